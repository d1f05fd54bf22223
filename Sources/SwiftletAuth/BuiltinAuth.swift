import AuthBackends
import SwiftletConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TOMLKit

/// A user of the built-in store.
public struct BuiltinUser: Sendable, Equatable {
    public var passwordHash: String
    public var superuser: Bool
}

/// The embedded default provider: users (etc/users.toml) and emqttd-style ACL rules
/// (etc/acl.toml), reloadable without a restart. Password checks run on a thread pool.
public final class BuiltinAuth: AuthProvider, @unchecked Sendable {
    public let name = "builtin"
    public let order: Int
    public var authenticates: Bool { true }
    public var authorizes: Bool { true }
    public let usersPath: String?
    public let aclPath: String?
    let pool: NIOThreadPool
    private let state: NIOLockedValueBox<(users: [String: BuiltinUser], rules: [ACLRule])>

    /// Starts with no users and emqttd's default rules; `reloadUsers`/`reloadACL` read the files.
    public init(usersPath: String?, aclPath: String?, order: Int, pool: NIOThreadPool) {
        self.usersPath = usersPath
        self.aclPath = aclPath
        self.order = order
        self.pool = pool
        self.state = NIOLockedValueBox(([:], ACLRule.emqttdDefaults))
    }

    public var users: [String: BuiltinUser] { state.withLockedValue { $0.users } }
    public var rules: [ACLRule] { state.withLockedValue { $0.rules } }

    /// Re-reads the ACL file (`swiftlet-ctl acl reload`). On error the old rules stay.
    public func reloadACL() throws -> Int {
        let rules = try readACL()
        install(rules: rules)
        return rules.count
    }

    public func reloadUsers() throws -> Int {
        let users = try readUsers()
        install(users: users)
        return users.count
    }

    /// The ACL file's rules, read and checked but not in force (`reload config` checks every
    /// file before it applies any).
    public func readACL() throws -> [ACLRule] { try aclPath.map(Self.loadRules) ?? ACLRule.emqttdDefaults }
    public func readUsers() throws -> [String: BuiltinUser] { try usersPath.map(Self.loadUsers) ?? [:] }
    public func install(rules: [ACLRule]) { state.withLockedValue { $0.rules = rules } }
    public func install(users: [String: BuiltinUser]) { state.withLockedValue { $0.users = users } }

    public func authenticate(_ c: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        guard let name = c.username, let user = users[name] else { return loop.makeSucceededFuture(ProviderAnswer(.ignore)) }
        guard let password else { return loop.makeSucceededFuture(ProviderAnswer(.deny(reason: "no password"))) }
        return pool.runIfActive(eventLoop: loop) {
            PasswordHash.verify(password, against: user.passwordHash)
                ? ProviderAnswer(.allow(superuser: user.superuser))
                : ProviderAnswer(.deny(reason: "bad password"))
        }
    }

    public func authorize(_ c: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        loop.makeSucceededFuture(decide(c, access: access, topic: topic))
    }

    public var answersSynchronously: Bool { true }

    public func authorizeNow(_ c: ClientInfo, access: ACLAccess, topic: String) -> ProviderAnswer? {
        decide(c, access: access, topic: topic)
    }

    /// The first rule that applies decides. The rules' view of the client is made once per
    /// question, not once per rule.
    private func decide(_ c: ClientInfo, access: ACLAccess, topic: String) -> ProviderAnswer {
        let client = EmqttdACL.Client(clientId: c.clientId, username: c.username, ipAddress: c.peerAddress)
        guard let allow = EmqttdACL.decide(rules, client, access == .publish ? .publish : .subscribe, topic: topic) else {
            return ProviderAnswer(.ignore)
        }
        return ProviderAnswer(allow ? .allow(superuser: false) : .deny(reason: "acl rule"))
    }

    // MARK: Users file

    public func setUser(_ name: String, password: String, superuser: Bool, scheme: PasswordHash.Scheme) throws {
        guard let usersPath else { throw ConfigError(key: "auth.users_file", line: nil, message: "no users file is configured") }
        let hash = try PasswordHash.make(password, scheme: scheme)
        try state.withLockedValue { s in
            var users = s.users
            users[name] = BuiltinUser(passwordHash: hash, superuser: superuser)
            try Self.saveUsers(users, to: usersPath)
            s.users = users
        }
    }

    @discardableResult
    public func deleteUser(_ name: String) throws -> Bool {
        guard let usersPath else { throw ConfigError(key: "auth.users_file", line: nil, message: "no users file is configured") }
        return try state.withLockedValue { s in
            var users = s.users
            guard users.removeValue(forKey: name) != nil else { return false }
            try Self.saveUsers(users, to: usersPath)
            s.users = users
            return true
        }
    }

    public static func loadUsers(_ path: String) throws -> [String: BuiltinUser] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let root = try StrictTOML.parse(text, key: path)
        var users: [String: BuiltinUser] = [:]
        guard let table = root["users"]?.table else { return users }
        for name in table.keys {
            guard let t = table[name]?.table, let hash = t["password"]?.string else {
                throw ConfigError(key: "users.\(name).password", line: nil, message: "missing in \(path)")
            }
            users[name] = BuiltinUser(passwordHash: hash, superuser: t["superuser"]?.bool ?? false)
        }
        return users
    }

    public static func saveUsers(_ users: [String: BuiltinUser], to path: String) throws {
        var out = "# Swiftlet built-in users; manage with `swiftlet-ctl users add|del|passwd|list`.\n"
        for name in users.keys.sorted() {
            let u = users[name]!
            out += "\n[users.\(tomlQuote(name))]\npassword = \(tomlQuote(u.passwordHash))\nsuperuser = \(u.superuser)\n"
        }
        try replaceFile(path, with: out, mode: 0o600, key: "auth.users_file")
    }

    /// Writes `text` next to `path` and renames it over `path`: readers see the old file or the
    /// new one, never half of one. rename(2), not FileManager.replaceItemAt: on Linux the latter
    /// fails when `path` does not exist yet (the first `users add` on a fresh users_file).
    static func replaceFile(_ path: String, with text: String, mode: mode_t, key: String) throws {
        let tmp = path + ".tmp"
        try text.write(toFile: tmp, atomically: false, encoding: .utf8)
        chmod(tmp, mode)
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw ConfigError(key: key, line: nil, message: "cannot write \(path): \(why)")
        }
    }

    public static func tomlQuote(_ s: String) -> String {
        var r = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\t": r += "\\t"
            default:
                if ch.value < 0x20 || ch.value == 0x7f { r += String(format: "\\u%04X", ch.value) } else { r.unicodeScalars.append(ch) }
            }
        }
        return r + "\""
    }

    // MARK: ACL file

    public static func loadRules(_ path: String) throws -> [ACLRule] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let root = try StrictTOML.parse(text, key: path)
        guard let array = root["rules"]?.array else { return [] }
        var rules: [ACLRule] = []
        for (i, v) in array.enumerated() {
            guard let t = v.table else { throw ConfigError(key: "rules[\(i + 1)]", line: nil, message: "not a table in \(path)") }
            var topics: [String]? = nil
            if let ta = t["topics"]?.array { topics = ta.compactMap { $0.string } }
            let permission: String = t["permission"]?.string ?? ""
            let user: String? = t["user"]?.string
            let clientId: String? = t["clientid"]?.string
            let ipaddr: String? = t["ipaddr"]?.string
            let access: String? = t["access"]?.string
            let rule = try ACLRule.parse(permission: permission, user: user, clientId: clientId, ipaddr: ipaddr,
                                         access: access, topics: topics, key: "rules[\(i + 1)]", in: " in \(path)")
            rules.append(rule)
        }
        return rules
    }

    /// Writes the rules as the ACL file reads them, replacing the file atomically (comments in
    /// the old file are not kept: the file says it is managed by `swiftlet-ctl acl`).
    public static func saveRules(_ rules: [ACLRule], to path: String) throws {
        var out = "# Swiftlet built-in ACL: the first rule that matches decides.\n"
            + "# Managed by `swiftlet-ctl acl add|set|del|move` and the dashboard; edits by hand are read by `acl reload`.\n"
        for (i, r) in rules.enumerated() {
            out += "\n[[rules]]\npermission = \"\(r.allow ? "allow" : "deny")\"\n"
            switch r.who {
            case .all: break
            case .user(let u): out += "user = \(tomlQuote(u))\n"
            case .clientId(let c): out += "clientid = \(tomlQuote(c))\n"
            case .ipaddr(let cidr): out += "ipaddr = \(tomlQuote(cidr.text))\n"
            case .and:
                throw ConfigError(key: "rules[\(i + 1)]", line: nil, message: "a rule for several conditions cannot be written to the ACL file")
            }
            out += "access = \"\(r.access.rawValue)\"\ntopics = [\(r.topics.map(tomlQuote).joined(separator: ", "))]\n"
        }
        try replaceFile(path, with: out, mode: 0o644, key: "auth.acl_file")
    }

    /// Changes the rules and writes them to the ACL file (`swiftlet-ctl acl add|set|del|move`,
    /// the dashboard). The file is written before the new rules take effect; on any error
    /// neither changes. Returns the new rules.
    @discardableResult
    public func editRules(_ change: (inout [ACLRule]) throws -> Void) throws -> [ACLRule] {
        guard let aclPath else { throw ConfigError(key: "auth.acl_file", line: nil, message: "no ACL file is configured") }
        return try state.withLockedValue { s in
            var rules = s.rules
            try change(&rules)
            try Self.saveRules(rules, to: aclPath)
            s.rules = rules
            return rules
        }
    }
}

extension EmqttdACL.Rule {
    /// One rule from its written fields, as the ACL file, ctl and the REST API give them: at
    /// most one of user / clientid / ipaddr (none: everyone), access publish|subscribe|pubsub
    /// (default pubsub), topics (default `#`). `key` names the rule in errors.
    public static func parse(permission: String, user: String?, clientId: String?, ipaddr: String?,
                             access: String?, topics: [String]?, key: String, in place: String = "") throws -> Self {
        guard permission == "allow" || permission == "deny" else {
            throw ConfigError(key: "\(key).permission", line: nil, message: "must be allow or deny\(place)")
        }
        guard [user, clientId, ipaddr].compactMap({ $0 }).count <= 1 else {
            throw ConfigError(key: key, line: nil, message: "name at most one of user, clientid and ipaddr\(place)")
        }
        var who = Who.all
        if let u = user { who = .user(u) }
        else if let c = clientId { who = .clientId(c) }
        else if let ip = ipaddr {
            guard let cidr = CIDR(ip) else { throw ConfigError(key: "\(key).ipaddr", line: nil, message: "bad address \(ip)\(place)") }
            who = .ipaddr(cidr)
        }
        let accessName = access ?? "pubsub"
        guard let a = Access(rawValue: accessName) else {
            throw ConfigError(key: "\(key).access", line: nil, message: "must be publish, subscribe or pubsub\(place)")
        }
        let t = topics ?? ["#"]
        guard !t.isEmpty, t.allSatisfy({ !$0.isEmpty }) else {
            throw ConfigError(key: "\(key).topics", line: nil, message: "needs at least one non-empty topic filter\(place)")
        }
        return Self(allow: permission == "allow", who: who, access: a, topics: t)
    }
}

extension CIDR {
    /// `a.b.c.d/n` or `x:x:...:x/n` (uncompressed, which `CIDR(_:)` reads back).
    public var text: String {
        let addr: String
        if bytes.count == 4 {
            addr = bytes.map { "\($0)" }.joined(separator: ".")
        } else {
            addr = stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
        return "\(addr)/\(prefix)"
    }
}
