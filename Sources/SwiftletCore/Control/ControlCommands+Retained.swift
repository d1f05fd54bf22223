import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

/// `retained list [<filter>] | del <topic or filter>`.
extension Broker {
    static let retainedUsage = "retained list [<filter>]\nretained del <topic>"
    static let retainedListLimit = 10_000

    func registerRetainedCommands() {
        builtin("retained", usage: Self.retainedUsage) { b, args, loop in
            switch (args.first, args.count) {
            case ("list", 1): return loop.reply(b.retainedList(nil, now: loop.now))
            case ("list", 2): return loop.reply(b.retainedList(args[1], now: loop.now))
            case ("del", 2): return loop.reply(b.retainedDel(args[1], now: loop.now))
            default: return loop.reply(.usage(Self.retainedUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
    }

    private func retainedList(_ filter: String?, now: NIODeadline) -> ControlReply {
        if let filter, !Topic.isValidFilter(filter) { return .failure("invalid topic filter \(filter)") }
        var list = filter.map { retained.match(filter: $0, now: now) } ?? retained.all(limit: Self.retainedListLimit)
        list.removeAll { $0.isExpired(now: now) }
        list.sort { $0.topic < $1.topic }
        let shown = list.prefix(Self.retainedListLimit)
        let rows = shown.map { m in
            [TextTable.cell(m.topic, max: 64), "\(m.qos.rawValue)", "\(m.payload.readableBytes)", Self.preview(m.payload)]
        }
        var text = TextTable.render(["TOPIC", "QOS", "BYTES", "PAYLOAD"], rows) + "\n\(shown.count) retained message(s)"
        if list.count > shown.count { text += " (first \(shown.count) shown)" }
        let json: [[String: Any]] = shown.map { m in
            var o: [String: Any] = ["topic": m.topic, "qos": Int(m.qos.rawValue), "bytes": m.payload.readableBytes]
            let bytes = Array(m.payload.readableBytesView)
            if let s = String(validating: bytes, as: UTF8.self) { o["payload"] = s } else { o["payload_base64"] = Data(bytes).base64EncodedString() }
            return o
        }
        return .done(text, json)
    }

    /// Deletes the retained message of a topic (or every one matching a filter) and records
    /// it in the durable store.
    private func retainedDel(_ topic: String, now: NIODeadline) -> ControlReply {
        guard !topic.isEmpty, Topic.isValidFilter(topic) else { return .failure("invalid topic \(topic)") }
        let victims = retained.match(filter: topic, now: now)
        guard !victims.isEmpty else { return .failure("no retained message on \(topic)") }
        for m in victims {
            retained.set(Message(topic: m.topic, payload: ByteBuffer(), qos: .atMostOnce, retain: true, now: now))
            store?.submit(.unretain(topic: m.topic))
        }
        logger.info("retained message deleted by swiftlet-ctl", metadata: ["mqtt.topic": "\(topic)", "retained.count": "\(victims.count)"])
        let topics = victims.map { $0.topic }.sorted()
        return .done("deleted \(topics.count) retained message(s): \(topics.joined(separator: ", "))", ["deleted": topics])
    }

    static func preview(_ payload: ByteBuffer) -> String {
        let bytes = Array(payload.readableBytesView.prefix(64))
        if let s = String(validating: bytes, as: UTF8.self) { return TextTable.cell(s, max: 40) }
        return "<binary>"
    }
}
