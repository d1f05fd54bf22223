import AuthBackends
import SidecarKit

/// Where Redis is and how to log in: `[auth_redis.redis_pool]`.
public struct RedisEndpoint: Sendable, Equatable {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var address: Address = .tcp(host: "127.0.0.1", port: 6379)
    public var database = 0
    /// `AUTH password` after connecting (Redis `requirepass`); nil or empty: none.
    public var password: String?
    public var connectTimeout = 2.0
    /// Per command (send and answer): `[auth_redis] query_timeout`; a command over it drops
    /// its connection (the pool reconnects it).
    public var commandTimeout = 3.0

    public init() {}

    public var described: String {
        switch address {
        case .tcp(let h, let p): return "\(h):\(p) db \(database)"
        case .unix(let path): return "unix:\(path) db \(database)"
        }
    }
}

/// The `[auth_redis]` table of etc/plugins/auth_redis.toml (emqttd_auth_redis's options,
/// docs/plugins/auth-redis.md), read once at start-up.
public struct AuthRedisSettings: Sendable, Equatable {
    /// Position in the broker's auth chain (lower is asked first; built-in: 1000).
    public var order: UInt16 = 100
    /// How long the broker may cache an answer, ms (0: the broker's defaults).
    public var ttlMs: UInt32 = 0
    public var supercmd: RedisCommand?
    public var authcmd: RedisCommand?
    public var aclcmd: RedisCommand?
    public var subcmd: RedisCommand?
    public var passwordHash = PasswordCheck.emqttdDefault
    public var aclNomatch = EmqttdACL.NoMatch.deny
    /// Most elements an answer may hold (aclcmd members, subcmd entries); more is an error
    /// (nothing is decided on a partial list), as `max_rows` in the SQL plugins.
    public var maxRows = 1000
    /// Largest string in an answer, bytes; longer is an error.
    public var maxFieldBytes = 65_536
    public var endpoint = RedisEndpoint()
    public var poolSize = 8
    /// emqttd's `auto_reconnect`: the longest wait, in seconds, between reconnect attempts
    /// (the first is after 0.1 s, doubling).
    public var autoReconnect = 2.0
    /// Requests waiting for a free connection beyond `pool_size`; more are answered `error`.
    public var maxQueue = 1024
    /// Idle connections are pinged this often (seconds; nil: never), so a restarted Redis is
    /// noticed before a client's request finds out.
    public var keepAlive: Double? = 30

    public init() {}

    public init(_ config: PluginConfig) throws {
        let s = try config.sectionOrEmpty("auth_redis")
        try s.checkKeys(allowed: ["order", "ttl_ms", "supercmd", "authcmd", "aclcmd", "subcmd", "password_hash",
                                  "acl_nomatch", "query_timeout", "max_rows", "max_field_bytes", "max_queue", "redis_pool"])
        if let v = try s.int("order", range: 0...65_535) { order = UInt16(v) }
        if let v = try s.int("ttl_ms", range: 0...86_400_000) { ttlMs = UInt32(v) }
        if let v = try s.double("query_timeout", range: 0.1...3600) { endpoint.commandTimeout = v }
        if let v = try s.int("max_rows", range: 1...1_000_000) { maxRows = v }
        if let v = try s.int("max_field_bytes", range: 64...(16 << 20)) { maxFieldBytes = v }
        if let v = try s.int("max_queue", range: 0...1_000_000) { maxQueue = v }
        func command(_ k: String) throws -> RedisCommand? {
            guard let words = try s.strings(k) else { return nil }
            do { return try RedisCommand(words) } catch { throw s.error(k, error.message) }
        }
        supercmd = try command("supercmd")
        authcmd = try command("authcmd")
        aclcmd = try command("aclcmd")
        subcmd = try command("subcmd")
        if let v = s.table["password_hash"] {
            var tokens: [PasswordCheck.Token] = []
            if let w = v.string {
                tokens = [.word(w)]
            } else if let a = v.array {
                for x in a {
                    if let w = x.string { tokens.append(.word(w)) } else if let i = x.int { tokens.append(.number(i)) } else {
                        throw s.error("password_hash", "must hold strings and numbers")
                    }
                }
            } else {
                throw s.error("password_hash", "must be a string or an array")
            }
            do { passwordHash = try PasswordCheck(tokens: tokens) } catch { throw s.error("password_hash", error.message) }
        }
        if let v = try s.choice("acl_nomatch", EmqttdACL.NoMatch.allCases.map(\.rawValue)) {
            aclNomatch = EmqttdACL.NoMatch(rawValue: v)!
        }
        if authcmd == nil && aclcmd == nil {
            throw s.error("authcmd", "is required (or aclcmd): with neither the plugin has nothing to do")
        }
        for k in ["supercmd", "subcmd"] where s.table[k] != nil && authcmd == nil {
            throw s.error(k, "needs authcmd (it follows a successful authentication)")
        }
        if passwordHash.usesSalt, let a = authcmd, !Self.returnsTwoValues(a) {
            throw s.error("password_hash", "\(passwordHash) needs the salt: authcmd must be an HMGET of the password and the salt, e.g. [\"HMGET\", \"mqtt_user:%u\", \"password\", \"salt\"]")
        }
        try readPool(s.section("redis_pool"))
    }

    /// `HMGET key password salt`: the salt is the second value.
    static func returnsTwoValues(_ c: RedisCommand) -> Bool {
        c.source.first?.uppercased() == "HMGET" && c.source.count >= 4
    }

    private mutating func readPool(_ p: ConfigSection?) throws {
        guard let p else { return }
        try p.checkKeys(allowed: ["pool_size", "auto_reconnect", "host", "port", "database", "password", "socket",
                                  "connect_timeout", "keep_alive", "ssl"])
        if let v = try p.int("pool_size", range: 1...256) { poolSize = v }
        // As in the SQL plugins: seconds, or `true` for the default; the pool always reconnects.
        if let b = p.table["auto_reconnect"]?.bool {
            guard b else { throw p.error("auto_reconnect", "the pool always reconnects: give the interval in seconds") }
        } else if let v = try p.double("auto_reconnect", range: 0.1...3600) {
            autoReconnect = v
        }
        if let b = p.table["keep_alive"]?.bool {
            keepAlive = b ? 30 : nil
        } else if let v = try p.double("keep_alive", range: 0.1...86_400) {
            keepAlive = v
        }
        if let v = try p.double("connect_timeout", range: 0.001...600) { endpoint.connectTimeout = v }
        if let v = try p.int("database", range: 0...1_000_000) { endpoint.database = v }
        if let v = try p.string("password"), !v.isEmpty { endpoint.password = v }
        if try p.bool("ssl") == true {
            throw p.error("ssl", "TLS needs hiredis 1.0 or later; this build links the system's libhiredis 0.14 (Debian 12), which has none: reach Redis over a Unix socket or a local TLS tunnel")
        }
        let host = try p.string("host") ?? "127.0.0.1"
        let port = try p.int("port", range: 1...65_535) ?? 6379
        if let path = try p.string("socket"), !path.isEmpty {
            if p.table["host"] != nil || p.table["port"] != nil {
                throw p.error("socket", "is a Unix socket path: leave host and port out")
            }
            endpoint.address = .unix(path: path)
        } else {
            guard !host.isEmpty else { throw p.error("host", "must not be empty") }
            endpoint.address = .tcp(host: host, port: port)
        }
    }
}
