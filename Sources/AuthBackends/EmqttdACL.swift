import MQTTCodec

/// emqttd's ACL semantics, shared by the built-in rules (etc/acl.toml) and every database
/// sidecar (rows of `mqtt_acl`): who a rule is for, what access, which topics, first match
/// decides, `acl_nomatch` when none does.
public enum EmqttdACL {
    /// Who is asking.
    public struct Client: Sendable, Hashable {
        public var clientId: String
        public var username: String?
        public var ipAddress: String
        public init(clientId: String, username: String?, ipAddress: String) {
            self.clientId = clientId
            self.username = username
            self.ipAddress = ipAddress
        }
    }

    /// What the client does: emqttd's access values 1 subscribe, 2 publish.
    public enum Action: UInt8, Sendable, Hashable {
        case subscribe = 1
        case publish = 2
    }

    /// What a rule covers: 1 subscribe, 2 publish, 3 pubsub (the `access` column).
    public enum Access: String, Sendable, Equatable {
        case subscribe, publish, pubsub

        /// The `access` column's value: 1, 2 or 3; nil otherwise.
        public init?(code: Int) {
            switch code {
            case 1: self = .subscribe
            case 2: self = .publish
            case 3: self = .pubsub
            default: return nil
            }
        }

        public func covers(_ a: Action) -> Bool {
            switch (self, a) {
            case (.pubsub, _), (.publish, .publish), (.subscribe, .subscribe): return true
            default: return false
            }
        }
    }

    /// `acl_nomatch`: the answer when no rule matched. `ignore` lets the next provider decide.
    public enum NoMatch: String, Sendable, Equatable, CaseIterable {
        case allow, deny, ignore
    }

    /// Who a rule is for.
    public indirect enum Who: Sendable, Equatable {
        case all
        case user(String)
        case clientId(String)
        case ipaddr(CIDR)
        /// Every condition (a row with several of ipaddr / username / clientid set).
        case and([Who])

        public func matches(_ c: Client) -> Bool {
            switch self {
            case .all: return true
            case .user(let u): return c.username.map { Topic.sameBytes($0, u) } ?? false
            case .clientId(let id): return Topic.sameBytes(c.clientId, id)
            case .ipaddr(let cidr): return cidr.contains(c.ipAddress)
            case .and(let all): return all.allSatisfy { $0.matches(c) }
            }
        }
    }

    /// One rule: `{allow|deny, Who, Access, Topics}`.
    public struct Rule: Sendable, Equatable {
        public typealias Who = EmqttdACL.Who
        public typealias Access = EmqttdACL.Access

        public var allow: Bool
        public var who: Who
        public var access: Access
        /// Filters; `%u`/`%c` are the username / client id, substituted literally;
        /// `eq <t>` matches `t` literally.
        public var topics: [String]

        public init(allow: Bool, who: Who = .all, access: Access = .pubsub, topics: [String] = ["#"]) {
            self.allow = allow
            self.who = who
            self.access = access
            self.topics = topics
        }

        /// nil when the rule does not apply; else allow (true) / deny (false).
        public func decide(_ c: Client, _ action: Action, topic: String) -> Bool? {
            guard who.matches(c), access.covers(action) else { return nil }
            for t in topics where EmqttdACL.matches(t, topic: topic, client: c, isFilter: action == .subscribe) {
                return allow
            }
            return nil
        }

        /// emqttd's default acl.conf: `dashboard` may read $SYS, localhost may do anything,
        /// nobody else may subscribe to $SYS/# or exactly `#`, everything else is allowed.
        public static let emqttdDefaults: [Rule] = [
            Rule(allow: true, who: .user("dashboard"), access: .subscribe, topics: ["$SYS/#"]),
            Rule(allow: true, who: .ipaddr(CIDR("127.0.0.1")!), access: .pubsub, topics: ["$SYS/#", "#"]),
            Rule(allow: true, who: .ipaddr(CIDR("::1")!), access: .pubsub, topics: ["$SYS/#", "#"]),
            Rule(allow: false, who: .all, access: .subscribe, topics: ["$SYS/#", "eq #"]),
            Rule(allow: true),
        ]
    }

    /// Why a `mqtt_acl` row was not turned into a rule.
    public enum RowError: Error, Equatable, CustomStringConvertible {
        case noWho, badAllow(Int?), badAccess(Int?), noTopic, badIpaddr(String)

        public var description: String {
            switch self {
            case .noWho: return "ipaddr, username and clientid are all NULL"
            case .badAllow(let v): return "allow is \(v.map(String.init) ?? "NULL"), not 0 or 1"
            case .badAccess(let v): return "access is \(v.map(String.init) ?? "NULL"), not 1, 2 or 3"
            case .noTopic: return "topic is NULL or empty"
            case .badIpaddr(let s): return "ipaddr \(s) is not an address"
            }
        }
    }

    /// A row `allow, ipaddr, username, clientid, access, topic` of `aclquery`, as emqttd
    /// reads it: username `$all` is everyone; otherwise every non-NULL, non-empty column of
    /// ipaddr / username / clientid must match; `eq ` before the topic matches it literally.
    public static func rule(allow: Int?, ipaddr: String?, username: String?, clientId: String?,
                            access: Int?, topic: String?) throws(RowError) -> Rule {
        guard let allow, allow == 0 || allow == 1 else { throw .badAllow(allow) }
        guard let code = access, let acc = Access(code: code) else { throw .badAccess(access) }
        guard let topic, !topic.isEmpty else { throw .noTopic }
        let who: Who
        if username == "$all" {
            who = .all
        } else {
            var conds: [Who] = []
            if let ip = ipaddr, !ip.isEmpty {
                guard let cidr = CIDR(ip) else { throw .badIpaddr(ip) }
                conds.append(.ipaddr(cidr))
            }
            if let u = username, !u.isEmpty { conds.append(.user(u)) }
            if let c = clientId, !c.isEmpty { conds.append(.clientId(c)) }
            guard !conds.isEmpty else { throw .noWho }
            who = conds.count == 1 ? conds[0] : .and(conds)
        }
        return Rule(allow: allow == 1, who: who, access: acc, topics: [topic])
    }

    /// The first rule that applies decides (true allow, false deny); nil when none does.
    public static func decide(_ rules: [Rule], _ c: Client, _ action: Action, topic: String) -> Bool? {
        for r in rules {
            if let d = r.decide(c, action, topic: topic) { return d }
        }
        return nil
    }

    /// True when the rule filter `ruleTopic` (with `%u`/`%c`, or `eq <topic>`) matches
    /// `topic` (a PUBLISH topic, or a SUBSCRIBE filter when `isFilter`).
    ///
    /// `%u`/`%c` are substituted literally, in one pass (a name containing `%c` is not
    /// substituted again): the value is compared level by level with the topic, so a `+`,
    /// `#` or `/` in a username or client id never widens the rule, and a wildcard level of a
    /// SUBSCRIBE filter never equals a substituted value (client id `#` with `client/%c` may
    /// not subscribe to `client/#`). `%u` never matches an anonymous client (nor an empty
    /// username). A topic starting with `$` is not matched by a leading `+` or `#`.
    public static func matches(_ ruleTopic: String, topic: String, client c: Client, isFilter: Bool) -> Bool {
        if ruleTopic.hasPrefix("eq ") { return Topic.sameBytes(ruleTopic.dropFirst(3), topic) }
        if !ruleTopic.utf8.contains(UInt8(ascii: "%")) { return plainMatches(ruleTopic, topic: topic) }
        var pattern: [Level] = []
        for level in Topic.levels(ruleTopic) {
            if level == "+" { pattern.append(.plus); continue }
            if level == "#" { pattern.append(.hash); continue }
            guard level.contains("%") else { pattern.append(.exact(level)); continue }
            guard let (text, substituted) = substitute(level, c) else { return false }
            if !substituted { pattern.append(.exact(level)); continue }
            for part in Topic.levels(text) { pattern.append(.value(part)) }
        }
        let t = Topic.levels(topic)
        if topic.hasPrefix("$"), let first = pattern.first {
            switch first {
            case .plus, .hash: return false
            default: break
            }
        }
        var i = 0
        while i < pattern.count {
            if case .hash = pattern[i] { return true }
            if i >= t.count { return false }
            switch pattern[i] {
            case .plus, .hash: break
            case .exact(let s): if !Topic.sameBytes(s, t[i]) { return false }
            case .value(let s): if !Topic.sameBytes(s, t[i]) || (isFilter && (t[i] == "+" || t[i] == "#")) { return false }
            }
            i += 1
        }
        return i == t.count
    }

    private enum Level {
        case exact(Substring), value(Substring), plus, hash
    }

    /// `matches` for a rule topic without `%u`/`%c`, level by level over the UTF-8 bytes
    /// without splitting either string: the built-in rules ask it for every PUBLISH topic and
    /// SUBSCRIBE filter not in a cache, and splitting cost as much as the rest of the check.
    public static func plainMatches(_ ruleTopic: String, topic: String) -> Bool {
        let p = ruleTopic.utf8, t = topic.utf8
        let slash = UInt8(ascii: "/")
        if t.first == UInt8(ascii: "$"), let f = p.first, f == UInt8(ascii: "+") || f == UInt8(ascii: "#") {
            let second = p.index(after: p.startIndex)
            if second == p.endIndex || p[second] == slash { return false }
        }
        var pi: String.UTF8View.Index? = p.startIndex
        var ti: String.UTF8View.Index? = t.startIndex
        // The level starting at `i` and where the next one starts (nil after the last).
        func level(_ v: String.UTF8View, _ i: String.UTF8View.Index) -> (Substring.UTF8View, String.UTF8View.Index?) {
            let end = v[i...].firstIndex(of: slash) ?? v.endIndex
            return (v[i..<end], end == v.endIndex ? nil : v.index(after: end))
        }
        while let pStart = pi {
            let (pl, pNext) = level(p, pStart)
            if pl.count == 1 && pl.first == UInt8(ascii: "#") { return true }
            guard let tStart = ti else { return false }
            let (tl, tNext) = level(t, tStart)
            if !(pl.count == 1 && pl.first == UInt8(ascii: "+")) && !Topic.sameBytes(utf8: pl, tl) { return false }
            pi = pNext
            ti = tNext
        }
        return ti == nil
    }

    /// One level with `%u`/`%c` replaced; nil when `%u` is there and the client has no username.
    private static func substitute(_ level: Substring, _ c: Client) -> (String, Bool)? {
        var text = ""
        var substituted = false
        var i = level.startIndex
        while i < level.endIndex {
            let next = level.index(after: i)
            if level[i] == "%", next < level.endIndex, level[next] == "u" || level[next] == "c" {
                if level[next] == "u" {
                    guard let u = c.username, !u.isEmpty else { return nil }
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
        return (text, substituted)
    }
}
