import Foundation
import NIOCore

/// `listeners [list]` and `listeners reload-certs`.
extension Broker {
    static let listenersUsage = "listeners [list]\nlisteners reload-certs"

    func registerListenerCommands() {
        builtin("listeners", usage: Self.listenersUsage) { b, args, loop in
            switch args {
            case [], ["list"]: return loop.reply(b.listenersList())
            case ["reload-certs"]: return loop.reply(b.listenersReloadCerts())
            default: return loop.reply(.usage(Self.listenersUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
    }

    /// What ctl, the dashboard and $SYS show of one listener.
    func listenerJSON(_ l: ListenerState, address: String) -> [String: Any] {
        var refused: [String: Int] = [:]
        for (r, n) in l.refusedByReason { refused[r.rawValue] = n }
        return ["type": l.config.kind.rawValue, "bind": "\(l.config.host):\(l.config.port)", "address": address,
                "name": l.name, "connections": l.current.load(ordering: .relaxed),
                "max_connections": l.maxConnections.load(ordering: .relaxed),
                "max_conn_rate": l.maxConnRate.load(ordering: .relaxed),
                "accepted": l.accepted.load(ordering: .relaxed), "refused": refused.values.reduce(0, +),
                "refused_by_reason": refused, "malformed": l.malformed.load(ordering: .relaxed),
                "log_suppressed": l.logSuppressed.load(ordering: .relaxed)]
    }

    private func listenersList() -> ControlReply {
        var rows: [[String]] = []
        var json: [[String: Any]] = []
        for l in listeners {
            let address = l.address
            let j = listenerJSON(l, address: address)
            json.append(j)
            let rate = j["max_conn_rate"] as? Int == 0 ? "-" : "\(j["max_conn_rate"]!)/s"
            rows.append([l.config.kind.rawValue, "\(l.config.host):\(l.config.port)", address, "\(j["connections"]!)",
                         "\(j["max_connections"]!)", rate, "\(j["refused"]!)", "\(j["malformed"]!)"])
        }
        let text = TextTable.render(["TYPE", "BIND", "ADDRESS", "CONNECTIONS", "MAX", "RATE", "REFUSED", "MALFORMED"], rows)
            + "\nctl socket: \(config.ctlSocketPath)\nsidecar socket: \(config.sidecarSocketPath)"
        return .done(text, ["listeners": json, "ctl_socket": config.ctlSocketPath, "sidecar_socket": config.sidecarSocketPath])
    }

    private func listenersReloadCerts() -> ControlReply {
        let results = reloadCertificates()
        guard !results.isEmpty else { return .done("no TLS listener", ["reloaded": [String](), "failed": [String: String]()]) }
        let failed = results.filter { $0.error != nil }
        let lines = results.map { r in r.error.map { "\(r.listener): refused, current certificates kept: \($0)" } ?? "\(r.listener): reloaded" }
        guard failed.isEmpty else { return .failure(lines.joined(separator: "\n")) }
        return .done(lines.joined(separator: "\n"), ["reloaded": results.map(\.listener), "failed": [String: String]()])
    }
}
