import Foundation

/// One emqttd-style ACL rule: `{allow|deny, Who, Access, Topics}` (emqttd's etc/acl.conf), in
/// TOML. The first rule that matches decides.
public struct ACLRule: Sendable, Equatable {
    public enum Who: Sendable, Equatable {
        case all
        case user(String)
        case clientId(String)
        case ipaddr(CIDR)
    }

    public enum Access: String, Sendable { case publish, subscribe, pubsub }

    public var allow: Bool
    public var who: Who
    public var access: Access
    /// Filters; `%u`/`%c` are replaced by the username / client id; `eq <t>` matches `t` literally.
    public var topics: [String]

    public init(allow: Bool, who: Who = .all, access: Access = .pubsub, topics: [String] = ["#"]) {
        self.allow = allow
        self.who = who
        self.access = access
        self.topics = topics
    }

    /// emqttd's default acl.conf: `dashboard` may read $SYS, localhost may do anything, nobody
    /// else may subscribe to $SYS/# or exactly `#`, everything else is allowed.
    public static let emqttdDefaults: [ACLRule] = [
        ACLRule(allow: true, who: .user("dashboard"), access: .subscribe, topics: ["$SYS/#"]),
        ACLRule(allow: true, who: .ipaddr(CIDR("127.0.0.1")!), access: .pubsub, topics: ["$SYS/#", "#"]),
        ACLRule(allow: true, who: .ipaddr(CIDR("::1")!), access: .pubsub, topics: ["$SYS/#", "#"]),
        ACLRule(allow: false, who: .all, access: .subscribe, topics: ["$SYS/#", "eq #"]),
        ACLRule(allow: true),
    ]

    /// nil when the rule does not apply; else allow/deny.
    public func decide(_ c: ClientInfo, access a: ACLAccess, topic: String) -> Bool? {
        switch who {
        case .all: break
        case .user(let u): guard c.username == u else { return nil }
        case .clientId(let id): guard c.clientId == id else { return nil }
        case .ipaddr(let cidr): guard cidr.contains(c.peerAddress) else { return nil }
        }
        switch (access, a) {
        case (.pubsub, _), (.publish, .publish), (.subscribe, .subscribe): break
        default: return nil
        }
        for t in topics where Self.matches(t, topic: topic, client: c, isFilter: a == .subscribe) { return allow }
        return nil
    }

    /// `%u`/`%c` are substituted literally, in one pass (a name containing `%c` is not
    /// substituted again): the value is compared level by level with the topic, so a `+`,
    /// `#` or `/` in a username or client id never widens the rule. A wildcard level of a
    /// SUBSCRIBE filter never equals a substituted value (client id `#` with
    /// `client/%c` may not subscribe to `client/#`).
    static func matches(_ ruleTopic: String, topic: String, client c: ClientInfo, isFilter: Bool) -> Bool {
        if ruleTopic.hasPrefix("eq ") { return String(ruleTopic.dropFirst(3)) == topic }
        enum Level { case exact(Substring), value(Substring), plus, hash }
        var pattern: [Level] = []
        for level in ruleTopic.split(separator: "/", omittingEmptySubsequences: false) {
            if level == "+" { pattern.append(.plus); continue }
            if level == "#" { pattern.append(.hash); continue }
            guard level.contains("%") else { pattern.append(.exact(level)); continue }
            var text = ""
            var substituted = false
            var i = level.startIndex
            while i < level.endIndex {
                let next = level.index(after: i)
                if level[i] == "%", next < level.endIndex, level[next] == "u" || level[next] == "c" {
                    if level[next] == "u" {
                        guard let u = c.username, !u.isEmpty else { return false }
                        text += u
                    } else {
                        text += c.clientId
                    }
                    substituted = true
                    i = level.index(after: next)
                } else {
                    text.append(level[i])
                    i = next
                }
            }
            if !substituted { pattern.append(.exact(level)); continue }
            for part in text.split(separator: "/", omittingEmptySubsequences: false) { pattern.append(.value(part)) }
        }
        let t = topic.split(separator: "/", omittingEmptySubsequences: false)
        if topic.hasPrefix("$"), let first = pattern.first {
            switch first { case .plus, .hash: return false; default: break }
        }
        var i = 0
        while i < pattern.count {
            if case .hash = pattern[i] { return true }
            if i >= t.count { return false }
            switch pattern[i] {
            case .plus, .hash: break
            case .exact(let s): if s != t[i] { return false }
            case .value(let s):
                if s != t[i] || (isFilter && (t[i] == "+" || t[i] == "#")) { return false }
            }
            i += 1
        }
        return i == t.count
    }
}

/// An IPv4 or IPv6 address with an optional prefix length ("10.0.0.0/8", "::1").
public struct CIDR: Sendable, Equatable {
    let bytes: [UInt8]
    let prefix: Int

    public init?(_ s: String) {
        let parts = s.split(separator: "/", maxSplits: 1)
        guard let addr = parts.first, let b = CIDR.parse(String(addr)) else { return nil }
        bytes = b
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= b.count * 8 else { return nil }
            prefix = p
        } else {
            prefix = b.count * 8
        }
    }

    static func parse(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    public func contains(_ address: String) -> Bool {
        guard var a = CIDR.parse(address) else { return false }
        // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches IPv4 rules.
        if a.count == 16 && bytes.count == 4 && a[0..<10].allSatisfy({ $0 == 0 }) && a[10] == 0xff && a[11] == 0xff {
            a = Array(a[12...])
        }
        guard a.count == bytes.count else { return false }
        var bits = prefix
        for i in 0..<bytes.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xff : ~UInt8(0xff >> bits)
            if a[i] & mask != bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }
}
