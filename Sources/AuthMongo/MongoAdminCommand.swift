import SidecarKit

/// `swiftlet-ctl auth_mongo ...`: drop the broker's cached answers for a user whose document
/// changed in MongoDB, or show the plugin's state.
public enum MongoAdminCommand {
    public static func usage(_ plugin: String) -> String {
        "usage: \(plugin) invalidate user NAME | invalidate client ID | invalidate all | status"
    }

    /// What `args` asks for; nil: not a command of this plugin (print the usage).
    public enum Request: Equatable, Sendable {
        case invalidate(InvalidateScope)
        case status
    }

    public static func parse(_ args: [String]) -> Request? {
        switch args.first {
        case "invalidate":
            switch (args.count, args.dropFirst().first) {
            case (3, "user"): return .invalidate(.username(args[2]))
            case (3, "client"): return .invalidate(.clientId(args[2]))
            case (2, "all"): return .invalidate(.all)
            default: return nil
            }
        case "status" where args.count == 1:
            return .status
        default:
            return nil
        }
    }

    public static func run(_ plugin: String, _ args: [String], sidecar: Sidecar?, reachable: Bool,
                           settings: AuthMongoSettings) async -> CommandResult {
        switch parse(args) {
        case .invalidate(let scope)?:
            guard let sidecar, await sidecar.invalidate(scope) else { return .failed("\(plugin): not connected to the broker") }
            return .ok("\(plugin): invalidated \(describe(scope))")
        case .status?:
            let state = reachable ? "reachable" : "unreachable"
            let p = settings.pool
            return .ok("MongoDB \(p.described): \(state), pool_size \(p.size)",
                       json: "{\"mongodb\":\"\(jsonEscaped(p.described))\",\"reachable\":\(reachable),\"pool_size\":\(p.size)}")
        case nil:
            return .usage(usage(plugin))
        }
    }

    static func jsonEscaped(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += "\\u00" + String(u.value, radix: 16).leftPadded(2)
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func describe(_ s: InvalidateScope) -> String {
        switch s {
        case .all: return "all cached answers"
        case .username(let u): return "cached answers of user \(u.debugDescription)"
        case .clientId(let c): return "cached answers of client \(c.debugDescription)"
        }
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
