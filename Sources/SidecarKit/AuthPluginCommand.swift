import Foundation

extension InvalidateScope {
    /// What follows `invalidate` on a ctl line: `user NAME`, `client ID` or `all`; nil for
    /// anything else.
    public init?(arguments: some Collection<String>) {
        let a = Array(arguments)
        switch (a.count, a.first) {
        case (2, "user"): self = .username(a[1])
        case (2, "client"): self = .clientId(a[1])
        case (1, "all"): self = .all
        default: return nil
        }
    }

    /// "all cached answers", "cached answers of user \"alice\"", ...
    public var described: String {
        switch self {
        case .all: return "all cached answers"
        case .username(let u): return "cached answers of user \(u.debugDescription)"
        case .clientId(let c): return "cached answers of client \(c.debugDescription)"
        }
    }
}

extension CommandResult {
    /// Success with `json` for `swiftlet-ctl --json` made from an object (keys sorted).
    public static func ok(_ text: String, object: [String: any Sendable]) -> CommandResult {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return .ok(text, json: String(decoding: data, as: UTF8.self))
    }
}

extension SidecarHandlers {
    /// The database auth plugins' ctl command, `swiftlet-ctl <plugin> invalidate user NAME |
    /// client ID | all | status`: `invalidate` sends INVALIDATE so the broker drops the answers
    /// it cached (after a password or ACL change in the database); `status` prints what
    /// `status` returns (a line, and the object `--json` prints).
    public mutating func addAuthPluginCommand(_ plugin: String,
                                              status: @escaping @Sendable () -> (text: String, json: [String: any Sendable])) {
        let usage = "\(plugin) invalidate user NAME | client ID | all: drops the broker's cached answers; \(plugin) status"
        addCommand(plugin, usage: usage) { args, sidecar in
            switch args.first {
            case "invalidate":
                guard let scope = InvalidateScope(arguments: args.dropFirst()) else { return .usage("usage: \(usage)") }
                guard await sidecar.invalidate(scope) else { return .failed("\(plugin): not connected to the broker") }
                return .ok("\(plugin): invalidated \(scope.described)")
            case "status" where args.count == 1:
                let s = status()
                return .ok(s.text, object: s.json)
            default:
                return .usage("usage: \(usage)")
            }
        }
    }
}
