import MQTTCodec
import Foundation
import NIOCore

/// `swiftlet-ctl trace client <id> | topic <filter> --to FILE --for SECONDS [--payload]`
/// (emqttd's trace): packet headers of one client, or the PUBLISH packets of one topic filter,
/// written to FILE for SECONDS. The command returns at once.
extension Broker {
    static let traceUsage = "trace client <clientid> --to <file> --for <seconds> [--payload]\ntrace topic <filter> --to <file> --for <seconds> [--payload]"

    func registerTraceCommand() {
        builtin("trace", usage: Self.traceUsage) { b, args, loop in
            let usage = ControlReply.usage(Self.traceUsage.replacingOccurrences(of: "\ntrace ", with: " | "))
            guard args.count >= 2, ["client", "topic"].contains(args[0]) else { return loop.reply(usage) }
            var file: String?
            var seconds: Double?
            var payloads = false
            var i = 2
            while i < args.count {
                switch args[i] {
                case "--to" where i + 1 < args.count: file = args[i + 1]; i += 2
                case "--for" where i + 1 < args.count: seconds = Double(args[i + 1]); i += 2
                case "--payload": payloads = true; i += 1
                default: return loop.reply(usage)
                }
            }
            guard let file, !file.isEmpty else { return loop.reply(usage) }
            guard let seconds, seconds > 0, seconds <= 86_400 else {
                return loop.reply(.failure("trace: --for takes 0 < seconds <= 86400"))
            }
            let target = args[1]
            let byClient = args[0] == "client"
            if !byClient, !Topic.isValidFilter(target) { return loop.reply(.failure("trace: invalid topic filter \(target)")) }
            return b.startTrace(to: file, seconds: seconds, payloads: payloads, topicFilter: byClient ? nil : target) { c in
                !byClient || Topic.sameBytes(c.clientId, target)
            }.hop(to: loop).map { n in
                if byClient && n == 0 { return .failure("no connected client \(target) (or it is a gateway session)") }
                let what = byClient ? "client \(target)" : "topic \(target) on \(n) connection(s)"
                b.logger.info("trace started by swiftlet-ctl", metadata: ["trace.what": "\(what)", "trace.file": "\(file)"])
                return .done("tracing \(what) for \(seconds) s to \(file)",
                             ["traced_connections": n, "file": file, "seconds": seconds])
            }.recover { .failure("trace not started: \($0)") }
        }
    }
}
