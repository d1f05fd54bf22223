import AuthBackends
import SidecarKit
import TOMLKit

/// Which client library a plugin file asks for: the pool table present decides.
public enum SQLDriverKind: String, Sendable, Equatable {
    case mysql, pgsql

    /// The pool table's name: `mysql_pool` / `pgsql_pool`.
    public var poolTable: String { "\(rawValue)_pool" }
    var style: PreparedQuery.Style { self == .mysql ? .questionMark : .dollar }
}

/// `[<plugin>.mysql_pool]` / `[<plugin>.pgsql_pool]`: where the database is.
public struct SQLPoolSettings: Sendable, Equatable {
    public var size = 8
    /// Seconds: the longest pause between reconnect attempts (capped backoff up to it).
    public var autoReconnect = 1.0
    /// A host name, an address, or a Unix socket path (starts with `/`).
    public var host = "localhost"
    public var port: Int
    public var user = ""
    public var password = ""
    public var database = "mqtt"
    /// Client character set; emqttd's `utf8` is MariaDB's 4-byte `utf8mb4`.
    public var encoding = "utf8"
    /// Seconds between pings of an idle connection (`true`: 30); nil: no pings.
    public var keepAlive: Double? = 30
    public var ssl = false
    public var sslCAFile: String?
    public var sslCertFile: String?
    public var sslKeyFile: String?

    public init(driver: SQLDriverKind) {
        port = driver == .mysql ? 3306 : 5432
        autoReconnect = driver == .mysql ? 1 : 3
    }

    public var isUnixSocket: Bool { host.hasPrefix("/") }
}

/// One plugin file's `[auth_mysql]` / `[auth_pgsql]` table (named after the plugin), read
/// once at start-up. docs/plugins/auth-sql.md describes every key.
public struct SQLSettings: Sendable, Equatable {
    public var driver: SQLDriverKind
    public var pool: SQLPoolSettings
    /// Position in the broker's auth chain (lower is asked first; built-in: 1000).
    public var order: UInt16 = 100
    /// How long the broker may cache an answer, ms (0: its `cache_ttl_allow`/`_deny`).
    public var ttlMs: UInt32 = 0
    public var superQuery: PreparedQuery?
    public var authQuery: PreparedQuery?
    public var aclQuery: PreparedQuery?
    public var passwordHash = PasswordCheck.emqttdDefault
    public var aclNomatch = EmqttdACL.NoMatch.allow
    /// Seconds a query may run before it is cancelled; under the broker's request timeout (5 s).
    public var queryTimeout = 3.0
    /// Most rows a query may return; more is an error (nothing is decided on a partial list).
    public var maxRows = 1000
    /// Largest value of one column, bytes.
    public var maxFieldBytes = 65_536
    /// Requests waiting for a connection beyond `pool_size` running; more answer error at once.
    public var maxQueue = 1024

    public static let topKeys: Set<String> = [
        "order", "ttl_ms", "superquery", "authquery", "aclquery", "password_hash", "acl_nomatch",
        "query_timeout", "max_rows", "max_field_bytes", "max_queue", "mysql_pool", "pgsql_pool",
    ]

    public init(driver: SQLDriverKind) {
        self.driver = driver
        self.pool = SQLPoolSettings(driver: driver)
    }

    /// The table named `plugin` of the plugin file.
    public init(_ config: PluginConfig, plugin: String) throws {
        guard let s = try config.section(plugin) else {
            let others = config.pluginKeys.filter { $0 != "sidecar" }
            throw SidecarConfigError(file: config.file, key: plugin,
                                     message: "missing: the plugin's settings go in [\(plugin)] (the plugin file's name)"
                                         + (others.isEmpty ? "" : "; found [\(others.joined(separator: "], ["))]"))
        }
        try s.checkKeys(allowed: Self.topKeys)
        let my = try s.section("mysql_pool")
        let pg = try s.section("pgsql_pool")
        guard (my == nil) != (pg == nil) else {
            throw s.error("mysql_pool", my == nil ? "one of [\(plugin).mysql_pool] (MariaDB/MySQL) or [\(plugin).pgsql_pool] (PostgreSQL) is required"
                                                  : "only one of mysql_pool and pgsql_pool")
        }
        let driver: SQLDriverKind = my != nil ? .mysql : .pgsql
        self.init(driver: driver)
        pool = try Self.pool(my ?? pg!, driver)
        if let v = try s.int("order", range: 0...65_535) { order = UInt16(v) }
        if let v = try s.int("ttl_ms", range: 0...86_400_000) { ttlMs = UInt32(v) }
        func query(_ k: String) throws -> PreparedQuery? {
            guard let text = try s.string(k) else { return nil }
            do { return try PreparedQuery(text, style: driver.style) } catch { throw s.error(k, error.message) }
        }
        superQuery = try query("superquery")
        authQuery = try query("authquery")
        aclQuery = try query("aclquery")
        if superQuery != nil && authQuery == nil {
            throw s.error("superquery", "needs authquery (the superuser question follows a successful authentication)")
        }
        if authQuery == nil && aclQuery == nil {
            throw s.error("authquery", "is required (or aclquery): with neither the plugin has nothing to do")
        }
        if let v = s.table["password_hash"] {
            var tokens: [PasswordCheck.Token] = []
            let items: [TOMLValueConvertible] = v.array.map { Array($0) } ?? [v]
            for item in items {
                if let w = item.string { tokens.append(.word(w)) } else if let n = item.int { tokens.append(.number(n)) } else {
                    throw s.error("password_hash", "must be a string or an array of strings and integers")
                }
            }
            do { passwordHash = try PasswordCheck(tokens: tokens) } catch { throw s.error("password_hash", error.message) }
        }
        if let v = try s.choice("acl_nomatch", EmqttdACL.NoMatch.allCases.map(\.rawValue)) {
            aclNomatch = EmqttdACL.NoMatch(rawValue: v)!
        }
        if let v = try s.double("query_timeout", range: 0.1...3600) { queryTimeout = v }
        if let v = try s.int("max_rows", range: 1...1_000_000) { maxRows = v }
        if let v = try s.int("max_field_bytes", range: 64...(16 << 20)) { maxFieldBytes = v }
        if let v = try s.int("max_queue", range: 0...1_000_000) { maxQueue = v }
    }

    static func pool(_ p: ConfigSection, _ driver: SQLDriverKind) throws -> SQLPoolSettings {
        let userKey = driver == .mysql ? "user" : "username"
        try p.checkKeys(allowed: ["pool_size", "auto_reconnect", "host", "port", userKey, "password", "database",
                                  "encoding", "keep_alive", "ssl", "ssl_opts"])
        var o = SQLPoolSettings(driver: driver)
        if let v = try p.int("pool_size", range: 1...256) { o.size = v }
        if let b = p.table["auto_reconnect"]?.bool {
            guard b else { throw p.error("auto_reconnect", "the pool always reconnects: give the interval in seconds") }
        } else if let v = try p.double("auto_reconnect", range: 0.1...3600) {
            o.autoReconnect = v
        }
        if let v = try p.string("host") { o.host = v }
        if let v = try p.int("port", range: 1...65_535) { o.port = v }
        if let v = try p.string(userKey) { o.user = v }
        if let v = try p.string("password") { o.password = v }
        if let v = try p.string("database") { o.database = v }
        if let v = try p.string("encoding") {
            guard !v.isEmpty, v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw p.error("encoding", "must be a character set name such as utf8")
            }
            o.encoding = v
        }
        if let b = p.table["keep_alive"]?.bool {
            o.keepAlive = b ? 30 : nil
        } else if let v = try p.double("keep_alive", range: 1...86_400) {
            o.keepAlive = v
        }
        o.ssl = try p.bool("ssl") ?? false
        if let t = try p.section("ssl_opts") {
            try t.checkKeys(allowed: ["cafile", "certfile", "keyfile"])
            o.sslCAFile = try t.string("cafile")
            o.sslCertFile = try t.string("certfile")
            o.sslKeyFile = try t.string("keyfile")
            if (o.sslCertFile == nil) != (o.sslKeyFile == nil) {
                throw t.error(o.sslCertFile == nil ? "certfile" : "keyfile", "certfile and keyfile go together")
            }
        }
        return o
    }
}
