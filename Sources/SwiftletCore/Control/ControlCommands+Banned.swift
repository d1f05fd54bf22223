import MQTTCodec
import Foundation
import NIOCore

/// `banned list | add <clientid|username|peerhost> <who> [--reason TEXT] [--for SECONDS] | del <as> <who>`.
extension Broker {
    static let bannedUsage = "banned list\nbanned add <clientid|username|peerhost> <who> [--reason <text>] [--for <seconds>]\nbanned del <clientid|username|peerhost> <who>"

    func registerBannedCommands() {
        builtin("banned", usage: Self.bannedUsage) { b, args, loop in
            let usage = ControlReply.usage(Self.bannedUsage.replacingOccurrences(of: "\n", with: " | "))
            switch (args.first, args.count) {
            case ("list", 1):
                let list = b.banned.list()
                let rows = list.map { [$0.kind.rawValue, TextTable.cell($0.who), TextTable.cell($0.reason, max: 40),
                                       $0.until.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) } ?? "never"] }
                return loop.reply(.done(TextTable.render(["AS", "WHO", "REASON", "UNTIL"], rows) + "\n\(list.count) banned",
                                        list.map(\.json)))
            case ("add", 3...):
                guard let kind = BannedList.Kind(rawValue: args[1]) else { return loop.reply(usage) }
                let who = args[2]
                guard !who.isEmpty else { return loop.reply(.failure("who must not be empty")) }
                var reason = ""
                var seconds: Double?
                var i = 3
                while i < args.count {
                    guard i + 1 < args.count else { return loop.reply(usage) }
                    switch args[i] {
                    case "--reason": reason = args[i + 1]
                    case "--for":
                        guard let s = Double(args[i + 1]), s > 0 else { return loop.reply(.failure("--for takes a positive number of seconds")) }
                        seconds = s
                    default: return loop.reply(usage)
                    }
                    i += 2
                }
                let now = Date().timeIntervalSince1970
                let entry = BannedList.Entry(kind: kind, who: who, reason: reason, at: now, until: seconds.map { now + $0 })
                do { try b.banned.add(entry) } catch { return loop.reply(.failure("banned list not changed: \(error)")) }
                return b.kickBanned(entry, on: loop).map { kicked in
                    b.logger.info("banned", metadata: ["banned.as": "\(kind.rawValue)", "banned.who": "\(who)", "banned.kicked": "\(kicked)"])
                    return .done("banned \(kind.rawValue) \(who)\(kicked > 0 ? " (\(kicked) connection(s) closed)" : "")",
                                 entry.json.merging(["kicked": kicked]) { a, _ in a })
                }
            case ("del", 3):
                guard let kind = BannedList.Kind(rawValue: args[1]) else { return loop.reply(usage) }
                do {
                    guard try b.banned.remove(kind, args[2]) else { return loop.reply(.failure("\(kind.rawValue) \(args[2]) is not banned")) }
                } catch { return loop.reply(.failure("banned list not changed: \(error)")) }
                return loop.reply(.done("\(kind.rawValue) \(args[2]) no longer banned", ["as": kind.rawValue, "who": args[2]]))
            default:
                return loop.reply(usage)
            }
        }
    }

    /// Closes the connections a new entry bans (DISCONNECT 0x98 for 5.0); answers how many.
    /// Each connection is checked on its own loop, where its identity lives.
    private func kickBanned(_ e: BannedList.Entry, on loop: EventLoop) -> EventLoopFuture<Int> {
        let conns = connectionsLock.withLock { Array(connections.values) }
        let checks = conns.map { c in
            c.eventLoop.submit { () -> Int in
                let hit: Bool
                switch e.kind {
                case .clientid: hit = Topic.sameBytes(c.clientId, e.who)
                case .username: hit = c.username.map { Topic.sameBytes($0, e.who) } ?? false
                case .peerhost: hit = c.peerHost == e.who
                }
                guard hit, c.state == .connected || c.state == .connecting else { return 0 }
                c.kick()
                return 1
            }
        }
        return EventLoopFuture.whenAllComplete(checks, on: loop).map { $0.reduce(0) { $0 + ((try? $1.get()) ?? 0) } }
    }
}
