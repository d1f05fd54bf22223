import Foundation
import NIOCore
import SwiftletCore

/// `swiftlet-ctl admins list | add <name> <password> | passwd <name> <password> | del <name>`:
/// the dashboard's admins, for an operator on the host (no token needed: the ctl socket is 0600).
extension Dashboard {
    static let ctlOwner = "dashboard"
    static var adminsUsage: String { Broker.adminsUsage }

    func registerCtl() {
        _ = control.register("admins", usage: Self.adminsUsage, owner: Self.ctlOwner) { [weak self] args, loop in
            let promise = loop.makePromise(of: ControlReply.self)
            guard let self else {
                promise.succeed(ControlReply(status: ControlReply.failed, text: "dashboard stopped"))
                return promise.futureResult
            }
            promise.completeWithTask { await self.admins(args) }
            return promise.futureResult
        }
    }

    private func admins(_ args: [String]) async -> ControlReply {
        func done(_ text: String, _ json: Any) -> ControlReply {
            ControlReply(status: ControlReply.ok, text: text,
                         json: String(decoding: (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data(), as: UTF8.self))
        }
        do {
            switch (args.first, args.count) {
            case ("list", 1):
                let list = admins.admins
                let text = list.map { "\($0.username)\($0.mustChange ? "  (must change password)" : "")" }.joined(separator: "\n")
                    + "\n\(list.count) admin(s) in \(admins.path)"
                return done(text, list.map(Self.adminJSON))
            case ("add", 3):
                try await admins.addAdmin(args[1], password: args[2], description: "added by swiftlet-ctl")
                return done("admin \(args[1]) added", ["username": args[1]])
            case ("passwd", 3):
                try await admins.setPassword(args[1], args[2])
                tokens.revokeAll(of: args[1])
                return done("password of \(args[1]) changed", ["username": args[1]])
            case ("del", 2):
                try admins.deleteAdmin(args[1])
                tokens.revokeAll(of: args[1])
                return done("admin \(args[1]) deleted", ["username": args[1]])
            default:
                return ControlReply(status: ControlReply.usageError, text: "usage: " + Self.adminsUsage.replacingOccurrences(of: "\n", with: " | "))
            }
        } catch {
            return ControlReply(status: ControlReply.failed, text: "admins not changed: \(error)")
        }
    }
}
