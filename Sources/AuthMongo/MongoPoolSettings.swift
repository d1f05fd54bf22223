import SidecarKit

/// `[auth_mongo.mongo_pool]`: where MongoDB is, how to log in, how many clients. Either the
/// seed's `host` (one, or an array for a replica set), `port`, `login`, `password`,
/// `auth_source` and TLS options, or a full `uri` instead of all of those.
public struct MongoPoolSettings: Sendable, Equatable {
    /// Clients popped from the `mongoc_client_pool` = queries at once.
    public var size = 8
    /// Seconds: the longest pause between reconnect attempts (0.1 s first, doubling).
    public var autoReconnect = 3.0
    /// `host` or `host:port` entries (`[v6addr]:port` for IPv6).
    public var hosts = ["127.0.0.1"]
    /// For `hosts` entries without a port.
    public var port = 27017
    /// Where the user and ACL collections are.
    public var database = "mqtt"
    /// SCRAM user name; nil: no authentication.
    public var login: String?
    public var password: String?
    /// Where `login` is defined; nil: `database`.
    public var authSource: String?
    public var tls = false
    public var tlsCAFile: String?
    /// One PEM file with the client certificate and its private key.
    public var tlsCertificateKeyFile: String?
    public var tlsAllowInvalidHostnames = false
    /// A full connection string instead of hosts, port, login, password, auth_source and TLS.
    public var uri: String?
    /// Seconds to open a TCP connection (and finish TLS).
    public var connectTimeout = 2.0
    /// Seconds between pings of an idle client; nil: none.
    public var keepAlive: Double? = 30

    public init() {}

    static let keys: Set<String> = [
        "pool_size", "auto_reconnect", "host", "port", "database", "login", "password", "auth_source",
        "ssl", "ssl_opts", "uri", "connect_timeout", "keep_alive",
    ]

    init(_ p: ConfigSection) throws {
        try p.checkKeys(allowed: Self.keys)
        if let v = try p.int("pool_size", range: 1...256) { size = v }
        // As in the SQL and Redis plugins: seconds, or `true` for the default; the pool always
        // reconnects (emqttd's value is the seconds between attempts).
        if let b = p.table["auto_reconnect"]?.bool {
            guard b else { throw p.error("auto_reconnect", "the pool always reconnects: give the interval in seconds") }
        } else if let v = try p.double("auto_reconnect", range: 0.1...3600) {
            autoReconnect = v
        }
        if let b = p.table["keep_alive"]?.bool {
            keepAlive = b ? 30 : nil
        } else if let v = try p.double("keep_alive", range: 0.5...86_400) {
            keepAlive = v
        }
        if let v = try p.double("connect_timeout", range: 0.01...600) { connectTimeout = v }
        if let v = try p.string("database") {
            guard Self.validDatabase(v) else { throw p.error("database", "must be a database name (no /\\. \"$ spaces or NUL)") }
            database = v
        }
        if let u = try p.string("uri") {
            for k in ["host", "port", "login", "password", "auth_source", "ssl", "ssl_opts"] where p.table[k] != nil {
                throw p.error(k, "is part of uri: give either uri or the separate options")
            }
            guard u.hasPrefix("mongodb://") || u.hasPrefix("mongodb+srv://") else {
                throw p.error("uri", "must start with mongodb:// (or mongodb+srv://)")
            }
            uri = u
            return
        }
        if let v = p.table["host"] {
            let list: [String]
            if let s = v.string {
                list = [s]
            } else if v.array != nil {
                list = try p.strings("host") ?? []
            } else {
                throw p.error("host", "must be a string or an array of strings")
            }
            guard !list.isEmpty else { throw p.error("host", "must name at least one host") }
            for h in list where !Self.validHost(h) {
                throw p.error("host", "\(h.debugDescription) is not a host, host:port or [IPv6]:port")
            }
            hosts = list
        }
        if let v = try p.int("port", range: 1...65_535) { port = v }
        if let v = try p.string("login"), !v.isEmpty { login = v }
        if let v = try p.string("password") { password = v }
        if let v = try p.string("auth_source"), !v.isEmpty {
            guard Self.validDatabase(v) else { throw p.error("auth_source", "must be a database name") }
            authSource = v
        }
        if password != nil && !(password ?? "").isEmpty && login == nil {
            throw p.error("password", "needs login (the user it belongs to)")
        }
        tls = try p.bool("ssl") ?? false
        if let t = try p.section("ssl_opts") {
            if t.table["keyfile"] != nil {
                throw t.error("keyfile", "libmongoc reads the certificate and its key from one PEM file: put both in certfile")
            }
            try t.checkKeys(allowed: ["cafile", "certfile", "allow_invalid_hostnames"])
            tlsCAFile = try t.string("cafile")
            tlsCertificateKeyFile = try t.string("certfile")
            tlsAllowInvalidHostnames = try t.bool("allow_invalid_hostnames") ?? false
            if !tls { throw t.error("cafile", "TLS options without ssl = true") }
        }
    }

    /// `name`, `name:port`, `[v6]` or `[v6]:port`; nothing that would change the meaning of
    /// the connection string (`/`, `@`, `,`, `?`, spaces).
    static func validHost(_ h: String) -> Bool {
        guard !h.isEmpty, !h.contains(where: { "/@,?# \t\r\n\\%".contains($0) }) else { return false }
        if h.hasPrefix("[") {
            guard let close = h.firstIndex(of: "]") else { return false }
            let rest = h[h.index(after: close)...]
            return rest.isEmpty || (rest.hasPrefix(":") && Int(rest.dropFirst()).map { (1...65_535).contains($0) } == true)
        }
        let parts = h.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return true
        case 2: return !parts[0].isEmpty && Int(parts[1]).map { (1...65_535).contains($0) } == true
        default: return false  // a bare IPv6 address: write it as [addr]
        }
    }

    static func validDatabase(_ d: String) -> Bool {
        !d.isEmpty && d.utf8.count < 64 && !d.contains(where: { "/\\. \"$\0".contains($0) })
    }

    /// The connection string without credentials (they are set through libmongoc's API, so
    /// no character of theirs needs escaping): `mongodb://h1:p1,h2:p2/`, or `uri`.
    public var connectionString: String {
        if let uri { return uri }
        let list = hosts.map { h -> String in
            if h.hasPrefix("[") { return h.contains("]:") ? h : "\(h):\(port)" }
            return h.contains(":") ? h : "\(h):\(port)"
        }
        return "mongodb://" + list.joined(separator: ",") + "/"
    }

    /// For logs: the hosts (or the URI with its password hidden) and the database.
    public var described: String {
        if let uri { return "\(Self.hidingPassword(uri)) database \(database)" }
        let user = login.map { "\($0)@" } ?? ""
        return "\(user)\(connectionString.dropFirst("mongodb://".count).dropLast()) database \(database)\(tls ? " tls" : "")"
    }

    /// `mongodb://user:secret@h/` → `mongodb://user:***@h/`.
    static func hidingPassword(_ uri: String) -> String {
        guard let scheme = uri.range(of: "://") else { return uri }
        let rest = uri[scheme.upperBound...]
        let authority = rest[..<(rest.firstIndex(of: "/") ?? rest.endIndex)]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return uri }
        return String(uri[..<scheme.upperBound]) + rest[..<colon] + ":***" + rest[at...]
    }
}
