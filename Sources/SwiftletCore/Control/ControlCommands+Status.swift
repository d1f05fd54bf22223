import Foundation
import NIOCore

/// The broker's counters in one read: what `swiftlet-ctl status` shows and the dashboard
/// samples once a second (without going through the ctl command's JSON).
public struct BrokerStatus: Sendable {
    /// In `status`'s order: uptime_seconds, clients, clients_max, clients_parked, sessions, subscriptions,
    /// retained, sidecars, messages_received/sent/dropped, bytes_received/sent.
    public var fields: [(String, Int)]
    public var values: [String: Int] { Dictionary(fields, uniquingKeysWith: { a, _ in a }) }
}

/// `status`, `help`.
extension Broker {
    /// Sums every loop's counters (one task per loop) with the broker's gauges.
    public func status() -> EventLoopFuture<BrokerStatus> {
        collectStats().map { stats in
            BrokerStatus(fields: [
                ("uptime_seconds", Int(Date().timeIntervalSince(self.startedAt))),
                ("clients", self.clientsConnected.load(ordering: .relaxed)),
                ("clients_max", self.clientsMax.load(ordering: .relaxed)),
                ("clients_parked", self.parkingLot.count),
                ("sessions", self.registry.count),
                ("subscriptions", self.router.subscriptionCount.load(ordering: .relaxed)),
                ("retained", self.retained.count),
                ("sidecars", self.sidecars.connected.count),
                ("messages_received", stats.messagesReceived), ("messages_sent", stats.messagesSent),
                ("messages_dropped", stats.messagesDropped),
                ("bytes_received", stats.bytesReceived), ("bytes_sent", stats.bytesSent),
            ])
        }
    }

    static let pluginsUsage = "plugins list | load <name> | unload <name> | reload <name>"
    public static let adminsUsage = "admins list\nadmins add <username> <password>\nadmins passwd <username> <password>\nadmins del <username>"

    /// The commands the broker itself registers (and the dashboard's), in `help`'s order:
    /// what `swiftlet-ctl help` prints when no broker is running to ask.
    public static var builtinCommandUsages: [(command: String, usage: String)] {
        [("acl", aclUsage), ("admins", adminsUsage), ("banned", bannedUsage), ("cache", cacheUsage), ("clients", clientsUsage),
         ("help", "help"), ("listeners", listenersUsage), ("plugins", pluginsUsage), ("recon", reconUsage),
         ("reload", reloadUsage), ("retained", retainedUsage),
         ("sessions", sessionsUsage), ("status", "status"), ("subscriptions", subscriptionsUsage), ("topics", "topics list"),
         ("trace", traceUsage),
         ("users", usersUsage)]
    }

    func registerStatusCommands() {
        builtin("status", usage: "status") { b, args, loop in
            guard args.isEmpty else { return loop.reply(.usage("status")) }
            return b.status().hop(to: loop).map { status in
                var json: [String: Any] = ["running": true, "node": b.config.nodeName, "version": Broker.version]
                for (k, v) in status.fields { json[k] = v }
                let text = "swiftlet \(Broker.version) is running on node \(b.config.nodeName)\n"
                    + TextTable.fields(status.fields.map { ($0.0, "\($0.1)") })
                return .done(text, json)
            }
        }

        builtin("help", usage: "help") { b, _, loop in
            let list = b.control.commands
            var lines = ["Usage: swiftlet-ctl [--socket PATH] [--json] <command> [args...]", "", "Commands:"]
            for c in list {
                let owner = c.owner == Broker.controlOwner ? "" : "    (\(c.owner))"
                let usage = c.usage.split(separator: "\n").map(String.init)
                for u in usage.isEmpty ? [c.command] : usage { lines.append("  \(u)\(owner)") }
            }
            let json = list.map { ["command": $0.command, "usage": $0.usage, "owner": $0.owner] }
            return loop.reply(.done(lines.joined(separator: "\n"), ["commands": json]))
        }
    }
}
