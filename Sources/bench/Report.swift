import Foundation

/// One run, as printed (human line) or written (`--json`, one object per run).
struct RunResult: Codable {
    struct Latency: Codable {
        var samples: UInt64
        var p50Micros: Double
        var p99Micros: Double
        var p999Micros: Double
        var maxMicros: Double
        var meanMicros: Double
    }

    struct Connections: Codable {
        var attempted: Int
        var connected: Int
        var errors: Int
        var seconds: Double
        var perSecond: Double
        var firstErrors: [String]
        /// Connections lost while running (closed by the broker).
        var disconnects: Int
    }

    struct BenchCPU: Codable {
        var threads: Int
        var cores: Int
        var cpuSeconds: Double
        /// CPU used over wall time, in cores (1.0 = one core busy).
        var coresUsed: Double
        /// True when the generator used at least 90 % of the cores it may use, so the figures
        /// may be limited by the generator rather than the broker.
        var saturated: Bool
        /// The user and system (kernel) parts of `cpuSeconds`.
        var userSeconds: Double? = nil
        var systemSeconds: Double? = nil
    }

    struct BrokerProcess: Codable {
        var pid: Int32
        var cpuSeconds: Double
        var coresUsed: Double
        /// Broker CPU seconds per million messages received by subscribers (or sent, when
        /// this run has no subscriber).
        var cpuSecondsPerMillionMessages: Double?
        var rssBeforeBytes: Int
        var rssAfterBytes: Int
        var rssPerConnectionBytes: Double?
        /// The user and system (kernel) parts of `cpuSeconds`.
        var userSeconds: Double? = nil
        var systemSeconds: Double? = nil
    }

    /// Background subscriptions made before the traffic (pairs --background-subscriptions).
    struct Subscriptions: Codable {
        var count: Int
        var connections: Int
        var seconds: Double
        var perSecond: Double
        var rssBeforeBytes: Int?
        var rssAfterBytes: Int?
    }

    /// Retained messages stored, then received by subscribers of wildcard filters.
    struct Retained: Codable {
        struct Receive: Codable {
            var filter: String
            /// From the subscriber's CONNECT to the last retained message; nil when not all arrived.
            var seconds: Double?
            var received: Int
            var error: String?
        }
        var count: Int
        var publishers: Int
        var loadSeconds: Double
        var loadPerSecond: Double
        var rssBeforeBytes: Int?
        var rssAfterBytes: Int?
        var receive: [Receive]
    }

    var scenario: String
    var label: String?
    var broker: String
    var mqttVersion: String
    var qos: Int?
    var payloadBytes: Int?
    var publishers: Int
    var subscribers: Int
    var targetRate: Double?
    var durationSeconds: Double
    var sent: Int?
    var received: Int?
    var expected: Int?
    var sentPerSecond: Double?
    var receivedPerSecond: Double?
    var latency: Latency?
    /// Expected deliveries not received after the drain (QoS >= 1: lost; QoS 0: dropped).
    var lost: Int?
    var duplicates: Int?
    var acked: Int?
    /// Times a publisher's window was written off after 500 ms without a delivery.
    var stalls: Int?
    /// Sequence numbers skipped, per publisher, as seen by subscribers.
    var gaps: Int?
    /// Messages that arrived behind a later one of the same publisher.
    var outOfOrder: Int?
    var protocolErrors: Int
    var connections: Connections
    var bench: BenchCPU
    var brokerProcess: BrokerProcess?
    var subscriptions: Subscriptions?
    var retained: Retained?
    var date: String

    static func latency(_ h: Histogram) -> Latency? {
        guard h.total > 0 else { return nil }
        func us(_ v: UInt64) -> Double { (Double(v) / 1000).rounded(toPlaces: 1) }
        return Latency(samples: h.total, p50Micros: us(h.value(atQuantile: 0.5)), p99Micros: us(h.value(atQuantile: 0.99)),
                       p999Micros: us(h.value(atQuantile: 0.999)), maxMicros: us(h.max), meanMicros: (h.mean / 1000).rounded(toPlaces: 1))
    }

    func print(json: Bool) {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            let data = try! enc.encode(self)
            Swift.print(String(decoding: data, as: UTF8.self))
        } else {
            Swift.print(humanLine)
            if bench.saturated {
                Swift.print("warning: the generator used \(fmt(bench.coresUsed, 2)) of \(min(bench.threads, bench.cores)) cores; it may be the bottleneck")
            }
            for e in connections.firstErrors { Swift.print("error: \(e)") }
        }
    }

    var humanLine: String {
        var parts: [String] = []
        var head = "\(scenario)"
        if let label { head += " [\(label)]" }
        head += " \(broker) mqtt \(mqttVersion)"
        if let qos { head += " qos \(qos)" }
        if let payloadBytes { head += " \(payloadBytes) B" }
        if publishers > 0 || subscribers > 0 { head += " pub \(publishers) sub \(subscribers)" }
        if let r = targetRate, r > 0 { head += " rate \(grouped(r))/s" } else if sent != nil { head += " closed loop" }
        parts.append(head)
        if let s = sentPerSecond { parts.append("sent \(grouped(s))/s") }
        if let r = receivedPerSecond, subscribers > 0 { parts.append("recv \(grouped(r))/s") }
        if let l = latency {
            parts.append("latency p50 \(ms(l.p50Micros)) p99 \(ms(l.p99Micros)) p99.9 \(ms(l.p999Micros)) ms")
        }
        if let lost {
            let word = (qos ?? 0) == 0 ? "dropped" : "lost"
            parts.append("\(word) \(lost)")
        }
        if let g = gaps, g > 0 { parts.append("gaps \(g)") }
        if let o = outOfOrder, o > 0 { parts.append("out of order \(o)") }
        if let s = stalls, s > 0 { parts.append("stalls \(s)") }
        if let s = subscriptions {
            parts.append("\(grouped(Double(s.count))) subscriptions on \(s.connections) connections in \(fmt(s.seconds, 2)) s (\(grouped(s.perSecond))/s)")
        }
        if let r = retained {
            parts.append("\(grouped(Double(r.count))) retained stored in \(fmt(r.loadSeconds, 2)) s (\(grouped(r.loadPerSecond))/s)")
            for x in r.receive {
                parts.append("\(x.filter): \(x.seconds.map { fmt($0, 2) + " s" } ?? "incomplete"), \(grouped(Double(x.received))) received")
            }
        }
        let c = connections
        parts.append("conn \(c.connected)/\(c.attempted) in \(fmt(c.seconds, 2)) s (\(grouped(c.perSecond))/s), \(c.errors) errors")
        if c.disconnects > 0 || protocolErrors > 0 { parts.append("\(c.disconnects) dropped connections, \(protocolErrors) protocol errors") }
        parts.append("bench cpu \(fmt(bench.coresUsed, 2))/\(bench.cores) cores")
        if let b = brokerProcess {
            var s = "broker cpu \(fmt(b.coresUsed, 2)) cores"
            if let m = b.cpuSecondsPerMillionMessages { s += ", \(fmt(m, 2)) cpu s/M msgs" }
            s += ", rss \(fmt(Double(b.rssAfterBytes) / 1_048_576, 1)) MiB"
            if let per = b.rssPerConnectionBytes { s += " (\(grouped(per)) B/conn)" }
            parts.append(s)
        }
        return parts.joined(separator: " | ")
    }
}

func fmt(_ v: Double, _ places: Int) -> String { String(format: "%.\(places)f", v) }
func ms(_ micros: Double) -> String { String(format: micros < 10_000 ? "%.3f" : "%.1f", micros / 1000) }

/// 1234567.8 -> "1,234,568"
func grouped(_ v: Double) -> String {
    let n = Int(v.rounded())
    let digits = String(abs(n))
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}

extension Double {
    func rounded(toPlaces p: Int) -> Double {
        let m = pow(10, Double(p))
        return (self * m).rounded() / m
    }
}

func isoDate() -> String {
    let f = ISO8601DateFormatter()
    return f.string(from: Date())
}
