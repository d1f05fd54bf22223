import AuthBackends
import SidecarKit

/// One LDAP server of `servers`: a host name or address, with the table's `port` unless the
/// entry names its own (`"ldap2.example.com:1389"`, `"[2001:db8::1]:636"`).
public struct LDAPServer: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `entry` as written in `servers`; nil when it is not a host, `host:port` or `[v6]:port`.
    public init?(_ entry: String, defaultPort: Int) {
        var host = Substring(entry)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65_535).contains(p) else { return nil }
                port = p
            }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65_535).contains(p) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " || $0 == "\0" || $0 == "[" || $0 == "]" }) else {
            return nil
        }
        self.host = String(host)
        self.port = port
    }

    /// `ldap://host:port` or `ldaps://host:port` (an IPv6 address in brackets).
    public func uri(ssl: Bool) -> String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(ssl ? "ldaps" : "ldap")://\(h):\(port)"
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// `[auth_ldap.sslopts]`: the client certificate and how the server's is checked.
public struct LDAPTLSOptions: Sendable, Equatable {
    public var certFile: String?
    public var keyFile: String?
    /// CA certificates (PEM) the server's certificate must chain to; nil: the system's.
    public var caCertFile: String?
    /// `verify_peer` (the default): the certificate must chain to a trusted CA and name the
    /// server as written in `servers`; `verify_none`: any certificate (testing only).
    public var verifyPeer = true

    public init() {}
}

/// Search mode: a service account finds the user's entry, then the sidecar binds as it.
public struct LDAPSearchMode: Sendable, Equatable {
    public var bindDN: String
    public var bindPassword: String
    public var baseDN: String
    public var filter: PlaceholderTemplate
    public var filterSource: String
    public var scope = LDAPScope.sub
    /// No entry found: `ignore` (the next provider decides, as the SQL plugins' empty
    /// authquery) or `deny`.
    public var unknownUserDenies = false
    /// A group whose `member` / `uniqueMember` (the entry's DN) or `memberUid` (the username)
    /// makes a superuser.
    public var superuserGroup: String?
    public var publishAttribute: String?
    public var subscribeAttribute: String?
    public var pubsubAttribute: String?

    /// The attributes holding ACL topic filters, with the access each grants.
    public var aclAttributes: [(name: String, access: EmqttdACL.Access)] {
        [(publishAttribute, EmqttdACL.Access.publish), (subscribeAttribute, .subscribe), (pubsubAttribute, .pubsub)]
            .compactMap { n, a in n.map { ($0, a) } }
    }
}

public enum LDAPMode: Sendable, Equatable {
    /// The seed's: bind as `user_dn` with the username substituted (RFC 4514 escaped).
    case bind(userDN: PlaceholderTemplate, source: String)
    case search(LDAPSearchMode)
}

/// The `[auth_ldap]` table of etc/plugins/auth_ldap.toml (emqttd_auth_ldap's options, and
/// search mode; docs/plugins/auth-ldap.md), read once at start-up.
public struct AuthLDAPSettings: Sendable, Equatable {
    /// Position in the broker's auth chain (lower is asked first; built-in: 1000).
    public var order: UInt16 = 100
    /// How long the broker may cache an answer, ms (0: the broker's defaults).
    public var ttlMs: UInt32 = 0
    /// Tried in order when a connection is opened: the first that answers serves it.
    public var servers: [LDAPServer]
    public var port: Int
    /// Seconds for connecting and for each operation (bind, search, StartTLS); an operation
    /// over it is abandoned and its connection reopened.
    public var timeout = 3.0
    public var ssl = false
    public var startTLS = false
    public var tls = LDAPTLSOptions()
    public var mode: LDAPMode
    public var aclNomatch = EmqttdACL.NoMatch.deny
    /// Connections per pool (search mode has two: the service account's and the users' binds).
    public var poolSize = 8
    /// The longest wait, in seconds, between reconnect attempts (0.1 s first, doubling).
    public var autoReconnect = 2.0
    /// Requests waiting for a free connection beyond `pool_size`; more are answered `error`.
    public var maxQueue = 1024
    /// Idle connections are checked (a read of the root DSE) this often; nil: never.
    public var keepAlive: Double? = 30

    /// The placeholders a DN or filter may use: %u username, %c client id, %a IP address,
    /// %C certificate common name, %d certificate subject. %P (the password) is refused.
    public static let allowedPlaceholders: Set<Placeholder> = [.username, .clientId, .ipAddress, .certCommonName, .certSubject]

    /// Most ACL values one entry may hold, and the longest; more is an `error`.
    public static let maxACLValues = 10_000
    public static let maxACLValueBytes = 65_536

    static let keys: Set<String> = [
        "order", "ttl_ms", "servers", "port", "timeout", "user_dn", "ssl", "starttls", "sslopts",
        "bind_dn", "bind_password", "base_dn", "filter", "scope", "unknown_user", "superuser_group",
        "publish_attribute", "subscribe_attribute", "pubsub_attribute", "acl_nomatch",
        "pool_size", "auto_reconnect", "max_queue", "keep_alive",
    ]
    static let searchKeys = ["bind_dn", "bind_password", "base_dn", "filter", "scope", "unknown_user", "superuser_group",
                             "publish_attribute", "subscribe_attribute", "pubsub_attribute"]

    public init(_ config: PluginConfig) throws {
        guard let s = try config.section("auth_ldap") else {
            throw SidecarConfigError(file: config.file, key: "auth_ldap",
                                     message: "missing: the plugin's settings go in [auth_ldap] (user_dn for bind mode, or bind_dn, base_dn and filter for search mode)")
        }
        try s.checkKeys(allowed: Self.keys)
        if let v = try s.int("order", range: 0...65_535) { order = UInt16(v) }
        if let v = try s.int("ttl_ms", range: 0...86_400_000) { ttlMs = UInt32(v) }
        if let v = try s.double("timeout", range: 0.1...600) { timeout = v }
        if let v = try s.int("pool_size", range: 1...256) { poolSize = v }
        if let v = try s.int("max_queue", range: 0...1_000_000) { maxQueue = v }
        if let b = s.table["auto_reconnect"]?.bool {
            guard b else { throw s.error("auto_reconnect", "the pool always reconnects: give the interval in seconds") }
        } else if let v = try s.double("auto_reconnect", range: 0.1...3600) {
            autoReconnect = v
        }
        if let b = s.table["keep_alive"]?.bool {
            keepAlive = b ? 30 : nil
        } else if let v = try s.double("keep_alive", range: 0.1...86_400) {
            keepAlive = v
        }
        ssl = try s.bool("ssl") ?? false
        startTLS = try s.bool("starttls") ?? false
        if ssl && startTLS {
            throw s.error("starttls", "choose one: ssl (LDAPS, port 636) or starttls (upgrade on the LDAP port)")
        }
        let defaultPort = try s.int("port", range: 1...65_535) ?? (ssl ? 636 : 389)
        port = defaultPort
        let entries = try s.strings("servers") ?? ["localhost"]
        guard !entries.isEmpty else { throw s.error("servers", "must name at least one server") }
        var servers: [LDAPServer] = []
        for (i, e) in entries.enumerated() {
            if e.contains("://") { throw s.error("servers[\(i)]", "a host or host:port (\(e) is a URI; the scheme follows ssl)") }
            guard let server = LDAPServer(e, defaultPort: defaultPort) else {
                throw s.error("servers[\(i)]", "\(e.debugDescription) is not a host, host:port or [IPv6]:port")
            }
            servers.append(server)
        }
        self.servers = servers
        if let t = try s.section("sslopts") {
            guard ssl || startTLS else { throw s.error("sslopts", "has no effect without ssl = true or starttls = true") }
            try t.checkKeys(allowed: ["certfile", "keyfile", "cacertfile", "verify"])
            tls.certFile = try Self.path(t, "certfile")
            tls.keyFile = try Self.path(t, "keyfile")
            tls.caCertFile = try Self.path(t, "cacertfile")
            if (tls.certFile == nil) != (tls.keyFile == nil) {
                throw t.error(tls.certFile == nil ? "certfile" : "keyfile", "certfile and keyfile go together (the client certificate and its key)")
            }
            if let v = try t.choice("verify", ["verify_peer", "verify_none"]) { tls.verifyPeer = v == "verify_peer" }
        }
        if let v = try s.choice("acl_nomatch", EmqttdACL.NoMatch.allCases.map(\.rawValue)) {
            aclNomatch = EmqttdACL.NoMatch(rawValue: v)!
        }
        mode = try Self.mode(s)
        if case .bind = mode, s.table["acl_nomatch"] != nil {
            throw s.error("acl_nomatch", "applies to the ACL attributes of search mode; bind mode answers no ACL question")
        }
    }

    private static func path(_ t: ConfigSection, _ k: String) throws -> String? {
        guard let v = try t.string(k) else { return nil }
        guard !v.isEmpty, !v.contains("\0") else { throw t.error(k, "must be a file path") }
        return v
    }

    /// A DN or filter template: `$u` is `%u` (the seed writes `uid=$u,...`); placeholders
    /// outside `allowedPlaceholders` and NUL are refused.
    static func template(_ s: ConfigSection, _ k: String, _ text: String) throws -> PlaceholderTemplate {
        guard !text.contains("\0") else { throw s.error(k, "must not contain NUL") }
        let t = PlaceholderTemplate(text.replacingOccurrences(of: "$u", with: "%u"))
        for p in t.placeholders where !allowedPlaceholders.contains(p) {
            throw s.error(k, "%\(p.rawValue) is not available here (use %u or $u, %c, %a, %C, %d)")
        }
        guard !t.placeholders.isEmpty else {
            throw s.error(k, "needs a placeholder (%u or $u: the username), or every client would be the same entry")
        }
        return t
    }

    /// A DN written in the file (bind_dn, base_dn, superuser_group): no placeholders.
    static func dn(_ s: ConfigSection, _ k: String) throws -> String? {
        guard let v = try s.string(k) else { return nil }
        guard !v.isEmpty, !v.contains("\0") else { throw s.error(k, "must be a DN, e.g. \"dc=example,dc=com\"") }
        return v
    }

    static func attribute(_ s: ConfigSection, _ k: String) throws -> String? {
        guard let v = try s.string(k) else { return nil }
        let ok = v.first?.isLetter == true && v.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        guard ok || (v.first?.isNumber == true && v.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }) else {
            throw s.error(k, "must be an attribute name (e.g. mqttPublishTopic) or OID")
        }
        return v
    }

    private static func mode(_ s: ConfigSection) throws -> LDAPMode {
        if let userDN = try s.string("user_dn") {
            if let k = searchKeys.first(where: { s.table[$0] != nil }) {
                throw s.error(k, "belongs to search mode; user_dn selects bind mode (leave user_dn out to search)")
            }
            return .bind(userDN: try template(s, "user_dn", userDN), source: userDN)
        }
        guard s.table["bind_dn"] != nil || s.table["filter"] != nil else {
            throw s.error("user_dn", "is required for bind mode (\"uid=$u,ou=People,dc=example,dc=com\"); for search mode set bind_dn, bind_password, base_dn and filter instead")
        }
        let bindDN = try s.require("bind_dn") { try dn(s, $0) }
        guard let bindPassword = try s.string("bind_password"), !bindPassword.isEmpty else {
            throw s.error("bind_password", "is required: a bind with a DN and no password is an unauthenticated bind (RFC 4513 5.1.2), which proves nothing")
        }
        let filterText = try s.require("filter") { try s.string($0) }
        guard filterText.hasPrefix("("), filterText.hasSuffix(")") else {
            throw s.error("filter", "must be an LDAP filter in parentheses, e.g. \"(&(objectClass=posixAccount)(uid=%u))\"")
        }
        var m = LDAPSearchMode(bindDN: bindDN, bindPassword: bindPassword, baseDN: try s.require("base_dn") { try dn(s, $0) },
                               filter: try template(s, "filter", filterText), filterSource: filterText)
        if let v = try s.choice("scope", LDAPScope.allCases.map(\.rawValue)) { m.scope = LDAPScope(rawValue: v)! }
        m.unknownUserDenies = try s.choice("unknown_user", ["ignore", "deny"]) == "deny"
        m.superuserGroup = try dn(s, "superuser_group")
        m.publishAttribute = try attribute(s, "publish_attribute")
        m.subscribeAttribute = try attribute(s, "subscribe_attribute")
        m.pubsubAttribute = try attribute(s, "pubsub_attribute")
        if m.aclAttributes.isEmpty, s.table["acl_nomatch"] != nil {
            throw s.error("acl_nomatch", "needs publish_attribute, subscribe_attribute or pubsub_attribute (without them the plugin answers no ACL question)")
        }
        return .search(m)
    }

    /// The search mode's settings; nil in bind mode.
    public var search: LDAPSearchMode? {
        if case .search(let m) = mode { return m }
        return nil
    }

    /// True when the plugin answers ACL questions (search mode with an ACL attribute).
    public var answersACL: Bool { !(search?.aclAttributes.isEmpty ?? true) }

    /// One line for the start-up log (no password).
    public var described: String {
        let transport = ssl ? "ldaps" : startTLS ? "ldap+starttls" : "ldap"
        var parts = ["servers \(servers.map(\.description).joined(separator: ", ")) (\(transport))"]
        switch mode {
        case .bind(_, let source):
            parts.append("bind mode, user_dn \(source)")
        case .search(let m):
            parts.append("search mode, bind_dn \(m.bindDN), base_dn \(m.baseDN), filter \(m.filterSource), scope \(m.scope.rawValue)")
            parts.append("unknown_user \(m.unknownUserDenies ? "deny" : "ignore")")
            if let g = m.superuserGroup { parts.append("superuser_group \(g)") }
            if !m.aclAttributes.isEmpty {
                parts.append("acl \(m.aclAttributes.map { "\($0.access.rawValue)=\($0.name)" }.joined(separator: " ")), acl_nomatch \(aclNomatch.rawValue)")
            }
        }
        parts.append("pool_size \(poolSize), timeout \(timeout) s")
        return parts.joined(separator: "; ")
    }
}
