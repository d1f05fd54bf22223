import Foundation
import Logging
import SidecarKit

/// The nine hook points of emqttd_plugin_template, each logged at info.
let templateHooks = [
    "client.connected", "client.subscribe", "client.unsubscribe", "session.subscribed", "session.unsubscribed",
    "message.publish", "message.delivered", "message.acked", "client.disconnected",
]

func logHookEvents(_ events: [IPCHookEvent], logger: Logger) {
    for event in events {
        var metadata: Logger.Metadata = ["hook.timestamp_ms": "\(event.timestampMs)"]
        for field in event.fields {
            metadata["hook.\(field.key)"] = "\(field.key == "payload" ? describePayload(Array(field.value.readableBytesView)) : field.text)"
        }
        logger.info("hook \(event.hook)", metadata: metadata)
    }
}

/// Short printable payloads as text, the rest as a size.
private func describePayload(_ bytes: [UInt8]) -> String {
    if bytes.count <= 64, let text = String(bytes: bytes, encoding: .utf8), !text.contains(where: { $0.isNewline }) {
        return text
    }
    return "(\(bytes.count) bytes)"
}

/// `swiftlet-ctl cmd arg1 arg2` (the seed's `emqttd_ctl:register_cmd(cmd, ...)`).
func runCmd(_ args: [String]) -> CommandResult {
    guard !args.isEmpty else { return .usage("cmd arg1 arg2 ...: echoes its arguments") }
    let json = (try? JSONSerialization.data(withJSONObject: ["args": args])).map { String(decoding: $0, as: UTF8.self) } ?? ""
    return .ok("cmd called with: \(args.joined(separator: " "))", json: json)
}
