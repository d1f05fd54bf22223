import SidecarKit

/// The template's own settings: the `[template]` table of its plugin file.
struct TemplateSettings: Sendable {
    struct User: Sendable {
        var password: String
        var superuser: Bool
    }

    struct Rules: Sendable {
        var allow: [String] = []
        var deny: [String] = []
    }

    /// Position in the broker's auth chain (lower is asked first).
    var order: UInt16 = 100
    /// How long the broker may cache an answer (0: the broker's default).
    var ttlMs: UInt32 = 0
    var users: [String: User] = [:]
    /// ACL rules by username; `$all` applies to every client after its own rules.
    var acl: [String: Rules] = [:]

    init() {}

    init(_ config: PluginConfig) throws {
        let t = try config.sectionOrEmpty("template")
        try t.checkKeys(allowed: ["order", "ttl_ms", "users", "acl"])
        if let v = try t.int("order", range: 0...65_535) { order = UInt16(v) }
        if let v = try t.int("ttl_ms", range: 0...86_400_000) { ttlMs = UInt32(v) }
        for (name, u) in try t.section("users")?.sections() ?? [] {
            try u.checkKeys(allowed: ["password", "superuser"])
            users[name] = User(password: try u.require("password", u.string), superuser: try u.bool("superuser") ?? false)
        }
        for (name, r) in try t.section("acl")?.sections() ?? [] {
            try r.checkKeys(allowed: ["allow", "deny"])
            acl[name] = Rules(allow: try r.strings("allow") ?? [], deny: try r.strings("deny") ?? [])
        }
    }
}
