import Foundation
import SidecarKit

/// `swiftlet-ctl auth_redis ...`: drop the broker's cached answers for a user whose hash or
/// ACL set changed in Redis, or show the plugin's state.
public enum AdminCommand {
    public static let usage = "usage: auth_redis invalidate user NAME | invalidate client ID | invalidate all | status"

    public static func run(_ args: [String], sidecar: Sidecar?, reachable: Bool, settings: AuthRedisSettings) async -> CommandResult {
        switch args.first {
        case "invalidate":
            let scope: InvalidateScope
            switch (args.count, args.dropFirst().first) {
            case (3, "user"): scope = .username(args[2])
            case (3, "client"): scope = .clientId(args[2])
            case (2, "all"): scope = .all
            default: return .usage(usage)
            }
            guard let sidecar, await sidecar.invalidate(scope) else { return .failed("not connected to the broker") }
            return .ok("invalidated \(describe(scope))")
        case "status" where args.count == 1:
            let state = reachable ? "reachable" : "unreachable"
            return .ok("Redis \(settings.endpoint.described): \(state), pool_size \(settings.poolSize)",
                       json: "{\"redis\":\"\(jsonEscaped(settings.endpoint.described))\",\"reachable\":\(reachable),\"pool_size\":\(settings.poolSize)}")
        default:
            return .usage(usage)
        }
    }

    static func jsonEscaped(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
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
