import Atomics
import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import Prometheus
import ServiceLifecycle

/// Samples the broker once a second (the `status` ctl command): the rates the overview's
/// charts show (`monitor_current`, the SSE stream) and the last ten minutes of them.
final class Monitor: @unchecked Sendable {
    struct Sample: Sendable {
        var at: Double
        var received: Double
        var sent: Double
        var dropped: Double
        var connections: Int
        var subscriptions: Int

        var json: [String: Any] {
            ["time": Int(at * 1000), "received_msg_rate": received, "sent_msg_rate": sent, "dropped_msg_rate": dropped,
             "connections": connections, "subscriptions": subscriptions]
        }
    }

    private let lock = NIOLock()
    private var history: [Sample] = []
    private var previous: (at: Double, received: Int, sent: Int, dropped: Int)?
    /// Set when the dashboard stops: open event streams end.
    let stopped = ManagedAtomic<Bool>(false)
    static let keep = 600

    var latest: Sample? { lock.withLock { history.last } }
    var recent: [Sample] { lock.withLock { history } }

    func record(status: [String: Any], now: Double = Date().timeIntervalSince1970) {
        func int(_ k: String) -> Int { (status[k] as? NSNumber)?.intValue ?? (status[k] as? Int) ?? 0 }
        let r = int("messages_received"), s = int("messages_sent"), d = int("messages_dropped")
        lock.withLock {
            var sample = Sample(at: now, received: 0, sent: 0, dropped: 0, connections: int("clients"), subscriptions: int("subscriptions"))
            if let p = previous, now > p.at {
                let dt = now - p.at
                sample.received = max(0, Double(r - p.received) / dt)
                sample.sent = max(0, Double(s - p.sent) / dt)
                sample.dropped = max(0, Double(d - p.dropped) / dt)
            }
            previous = (now, r, s, d)
            history.append(sample)
            if history.count > Self.keep { history.removeFirst(history.count - Self.keep) }
        }
    }

    struct Sampler: Service {
        let monitor: Monitor
        let dashboard: Dashboard
        func run() async throws {
            try? await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    if let status = try? await dashboard.status() {
                        monitor.record(status: status)
                        dashboard.metrics.update(status: status)
                    }
                    try await Task.sleep(nanoseconds: 1_000_000_000)
                }
            }
        }
    }

    func service(_ d: Dashboard) -> Sampler { Sampler(monitor: self, dashboard: d) }
}

/// Prometheus exposition through swift-metrics with swift-prometheus: broker counters and
/// gauges, per-listener and per-sidecar series. Labels are low-cardinality only (node,
/// listener, sidecar name); never a topic or a client id.
final class MetricsExporter: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let node: String
    private let lock = NIOLock()
    private var counters: [String: (CoreMetrics.Counter, Int)] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]

    init(nodeName: String) {
        node = nodeName
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// A monotonic value read from the broker becomes a counter increment.
    func count(_ name: String, _ value: Int, _ labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        lock.withLock {
            let dims = [("node", node)] + labels
            let (c, last) = counters[key] ?? (CoreMetrics.Counter(label: name, dimensions: dims, factory: factory), 0)
            if value > last { c.increment(by: value - last) }
            counters[key] = (c, max(last, value))
        }
    }

    func gauge(_ name: String, _ value: Double, _ labels: [(String, String)] = []) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        lock.withLock {
            let g = gauges[key] ?? CoreMetrics.Gauge(label: name, dimensions: [("node", node)] + labels, factory: factory)
            gauges[key] = g
            g.record(value)
        }
    }

    func update(status s: [String: Any]) {
        func int(_ k: String) -> Int { (s[k] as? NSNumber)?.intValue ?? (s[k] as? Int) ?? 0 }
        count("swiftlet_messages_received_total", int("messages_received"))
        count("swiftlet_messages_sent_total", int("messages_sent"))
        count("swiftlet_messages_dropped_total", int("messages_dropped"))
        count("swiftlet_bytes_received_total", int("bytes_received"))
        count("swiftlet_bytes_sent_total", int("bytes_sent"))
        gauge("swiftlet_connections", Double(int("clients")))
        gauge("swiftlet_connections_max", Double(int("clients_max")))
        gauge("swiftlet_connections_parked", Double(int("clients_parked")))
        gauge("swiftlet_sessions", Double(int("sessions")))
        gauge("swiftlet_subscriptions", Double(int("subscriptions")))
        gauge("swiftlet_retained_messages", Double(int("retained")))
        gauge("swiftlet_sidecars_connected", Double(int("sidecars")))
        gauge("swiftlet_uptime_seconds", Double(int("uptime_seconds")))
    }

    func update(listeners: [[String: Any]]) {
        for l in listeners {
            guard let name = l["name"] as? String else { continue }
            let n = (l["connections"] as? NSNumber)?.doubleValue ?? 0
            gauge("swiftlet_listener_connections", n, [("listener", name)])
            gauge("swiftlet_listener_max_connections", (l["max_connections"] as? NSNumber)?.doubleValue ?? 0, [("listener", name)])
        }
    }

    func update(plugins: [[String: Any]]) {
        for p in plugins {
            guard let name = p["name"] as? String else { continue }
            gauge("swiftlet_sidecar_up", (p["connected"] as? Bool) == true ? 1 : 0, [("sidecar", name)])
            if let r = (p["restarts"] as? NSNumber)?.intValue { count("swiftlet_sidecar_restarts_total", r, [("sidecar", name)]) }
            gauge("swiftlet_sidecar_gateway_sessions", (p["gateway_sessions"] as? NSNumber)?.doubleValue ?? 0, [("sidecar", name)])
        }
    }

    func update(cache: [String: Any]) {
        for role in ["authn", "authz"] {
            guard let c = cache[role] as? [String: Any] else { continue }
            for (k, v) in c {
                guard let n = (v as? NSNumber)?.intValue else { continue }
                switch k {
                case "hits", "misses", "evictions", "inserts": count("swiftlet_auth_cache_\(k)_total", n, [("role", role)])
                case "size", "entries": gauge("swiftlet_auth_cache_entries", Double(n), [("role", role)])
                default: break
                }
            }
        }
    }

    func text() -> [UInt8] { registry.emitToBuffer() }
}
