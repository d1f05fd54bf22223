import SidecarKit

/// The demo authenticator and ACL: users and rules from `[template]`. Whatever the template
/// does not know about it answers "ignore", so the next provider in the chain decides.
extension TemplateSettings {
    func authenticate(_ request: AuthnRequest) -> AuthnAnswer {
        guard let name = request.client.username, let user = users[name] else { return .ignore }
        guard let given = request.password, constantTimeEqual(given, Array(user.password.utf8)) else {
            return .deny("bad password", ttlMs: ttlMs)
        }
        return .allow(superuser: user.superuser, ttlMs: ttlMs)
    }

    /// The user's own rules, then `$all`'s; in each, deny before allow. No match: ignore.
    func authorize(_ request: AuthzRequest) -> AuthzAnswer {
        let filter = request.topic.split(separator: "/", omittingEmptySubsequences: false)
        for key in [request.client.username, "$all"].compactMap({ $0 }) {
            guard let rules = acl[key] else { continue }
            if rules.deny.contains(where: { covers($0, filter, request.client) }) {
                return .deny("template acl: \(key)", ttlMs: ttlMs)
            }
            if rules.allow.contains(where: { covers($0, filter, request.client) }) {
                return .allow(ttlMs: ttlMs, reason: "template acl: \(key)")
            }
        }
        return .ignore
    }

    /// Whether the rule `rule` (a topic filter with %u and %c) covers `filter`: a topic for
    /// publish, a filter for subscribe (a rule `a/+` covers `a/b` and `a/+`, not `a/#`).
    func covers(_ rule: String, _ filter: [Substring], _ client: IPCClient) -> Bool {
        var rule = rule
        for (placeholder, value) in [("%u", client.username), ("%c", client.clientId)] where rule.contains(placeholder) {
            // A value that is absent or would change the rule's shape never matches.
            guard let value, !value.isEmpty, !value.contains(where: { "/+#".contains($0) }) else { return false }
            rule = rule.replacingOccurrences(of: placeholder, with: value)
        }
        let levels = rule.split(separator: "/", omittingEmptySubsequences: false)
        if let first = filter.first, first.hasPrefix("$"), levels.first == "+" || levels.first == "#" { return false }
        for (i, level) in levels.enumerated() {
            if level == "#" { return true }
            guard i < filter.count, filter[i] != "#" else { return false }
            if level != "+" && level != filter[i] { return false }
        }
        return levels.count == filter.count
    }
}

private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var diff = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return diff == 0
}
