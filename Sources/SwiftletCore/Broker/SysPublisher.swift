import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

/// Publishes broker state under $SYS/brokers/<node>/ every `sys.interval` seconds
/// (retained, so a new subscriber sees the latest values at once).
extension Broker {
    func startSys() {
        guard config.sysInterval > 0 else { return }
        let interval = TimeAmount.milliseconds(Int64(config.sysInterval * 1000))
        var previous: (LoopStats, NIODeadline)?
        let ctx = loops[0]
        publishSysOnce(previous: nil) { previous = $0 }
        sysTask = ctx.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.publishSysOnce(previous: previous) { previous = $0 }
        }
    }

    private func publishSysOnce(previous: (LoopStats, NIODeadline)?, remember: @escaping ((LoopStats, NIODeadline)) -> Void) {
        collectStats().whenSuccess { [self] stats in
            let now = self.loops[0].eventLoop.now
            remember((stats, now))
            let prefix = "$SYS/brokers/\(config.nodeName)/"
            let uptime = Int(Date().timeIntervalSince(startedAt))
            var values: [(String, String)] = [
                ("version", "swiftlet \(Self.version)"),
                ("sysdescr", "Swiftlet MQTT broker"),
                ("uptime", "\(uptime) seconds"),
                ("datetime", ISO8601DateFormatter().string(from: Date())),
                ("stats/clients/count", "\(clientsConnected.load(ordering: .relaxed))"),
                ("stats/clients/max", "\(clientsMax.load(ordering: .relaxed))"),
                ("stats/clients/parked", "\(parkingLot.count)"),
                ("stats/sessions/count", "\(registry.count)"),
                ("stats/subscriptions/count", "\(router.subscriptionCount.load(ordering: .relaxed))"),
                ("stats/retained/count", "\(retained.count)"),
                ("metrics/messages/received", "\(stats.messagesReceived)"),
                ("metrics/messages/sent", "\(stats.messagesSent)"),
                ("metrics/messages/dropped", "\(stats.messagesDropped)"),
                ("metrics/bytes/received", "\(stats.bytesReceived)"),
                ("metrics/bytes/sent", "\(stats.bytesSent)"),
                ("metrics/packets/received", "\(stats.packetsReceived)"),
                ("metrics/packets/sent", "\(stats.packetsSent)"),
            ]
            // Per listener: open connections, refused and malformed ones, log lines held back.
            var refused = 0, malformed = 0, suppressed = 0
            for l in listeners {
                let (r, m, s) = (l.refusedTotal, l.malformed.load(ordering: .relaxed), l.logSuppressed.load(ordering: .relaxed))
                refused += r; malformed += m; suppressed += s
                let base = "listeners/\(l.name)/"
                values += [(base + "connections", "\(l.current.load(ordering: .relaxed))"), (base + "refused", "\(r)"),
                           (base + "malformed", "\(m)"), (base + "log_suppressed", "\(s)")]
            }
            values += [("metrics/connections/refused", "\(refused)"), ("metrics/connections/malformed", "\(malformed)"),
                       ("metrics/log/suppressed", "\(suppressed)")]
            if let (prev, at) = previous {
                let secs = max(0.001, Double((now - at).nanoseconds) / 1e9)
                func rate(_ a: Int, _ b: Int) -> String { String(format: "%.1f", Double(a - b) / secs) }
                values += [
                    ("metrics/messages/received/rate", rate(stats.messagesReceived, prev.messagesReceived)),
                    ("metrics/messages/sent/rate", rate(stats.messagesSent, prev.messagesSent)),
                    ("metrics/messages/dropped/rate", rate(stats.messagesDropped, prev.messagesDropped)),
                    ("metrics/bytes/received/rate", rate(stats.bytesReceived, prev.bytesReceived)),
                    ("metrics/bytes/sent/rate", rate(stats.bytesSent, prev.bytesSent)),
                ]
            }
            let ctx = loops[0]
            for (suffix, value) in values {
                var payload = ByteBufferAllocator().buffer(capacity: value.utf8.count)
                payload.writeString(value)
                let m = Message(topic: prefix + suffix, payload: payload, qos: .atMostOnce, retain: true, now: now)
                retained.set(m)
                ctx.route(m)
            }
        }
    }
}
