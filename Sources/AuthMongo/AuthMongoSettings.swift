import AuthBackends
import SidecarKit
import TOMLKit

/// A query table: which collection, which documents.
public struct MongoQuery: Sendable, Equatable {
    public var collection: String
    public var selector: MongoSelector
    public init(collection: String, selector: MongoSelector = .username) {
        self.collection = collection
        self.selector = selector
    }
}

/// `[auth_mongo.authquery]`: the user document's password (and `salt`) field.
public struct MongoAuthQuery: Sendable, Equatable {
    public var query: MongoQuery
    public var passwordField = "password"
    /// The field holding the salt of the salted hash forms (the seed's user document).
    public var saltField = "salt"
    public var passwordHash = PasswordCheck.emqttdDefault
    public init(query: MongoQuery = MongoQuery(collection: "mqtt_user")) { self.query = query }
}

/// `[auth_mongo.superquery]`: a field that is `true` for a superuser.
public struct MongoSuperQuery: Sendable, Equatable {
    public var query: MongoQuery
    public var superField = "is_superuser"
    public init(query: MongoQuery = MongoQuery(collection: "mqtt_user")) { self.query = query }
}

/// The `[auth_mongo]` table of etc/plugins/auth_mongo.toml (emqttd_auth_mongo's options in
/// TOML, docs/plugins/auth-mongo.md), read once at start-up.
public struct AuthMongoSettings: Sendable, Equatable {
    /// Position in the broker's auth chain (lower is asked first; built-in: 1000).
    public var order: UInt16 = 100
    /// How long the broker may cache an answer, ms (0: its `cache_ttl_allow`/`_deny`).
    public var ttlMs: UInt32 = 0
    public var superQuery: MongoSuperQuery?
    public var authQuery: MongoAuthQuery?
    public var aclQuery: MongoQuery?
    /// The seed's `{acl_nomatch, deny}`.
    public var aclNomatch = EmqttdACL.NoMatch.deny
    /// Seconds a query may take (server selection, the query itself), under the broker's
    /// request timeout (5 s): libmongoc's `serverSelectionTimeoutMS` and `socketTimeoutMS`,
    /// the query's `maxTimeMS`, and the longest wait for a free client.
    public var queryTimeout = 3.0
    /// Most ACL documents for one client, and most topics in one list; more is an error
    /// (nothing is decided on part of a list).
    public var maxRows = 1000
    /// Longest string in a document read, bytes; longer is an error.
    public var maxFieldBytes = 65_536
    /// Requests waiting for a free client beyond `pool_size`; more are answered error at once.
    public var maxQueue = 1024
    public var pool = MongoPoolSettings()

    public init() {}

    public static let plugin = "auth_mongo"

    public init(_ config: PluginConfig, plugin: String = AuthMongoSettings.plugin) throws {
        guard let s = try config.section(plugin) else {
            throw SidecarConfigError(file: config.file, key: plugin,
                                     message: "missing: the plugin's settings go in [\(plugin)] (the plugin file's name)")
        }
        try s.checkKeys(allowed: ["order", "ttl_ms", "superquery", "authquery", "aclquery", "acl_nomatch",
                                  "query_timeout", "max_rows", "max_field_bytes", "max_queue", "mongo_pool"])
        if let v = try s.int("order", range: 0...65_535) { order = UInt16(v) }
        if let v = try s.int("ttl_ms", range: 0...86_400_000) { ttlMs = UInt32(v) }
        if let v = try s.double("query_timeout", range: 0.1...3600) { queryTimeout = v }
        if let v = try s.int("max_rows", range: 1...1_000_000) { maxRows = v }
        if let v = try s.int("max_field_bytes", range: 64...(16 << 20)) { maxFieldBytes = v }
        if let v = try s.int("max_queue", range: 0...1_000_000) { maxQueue = v }
        if let v = try s.choice("acl_nomatch", EmqttdACL.NoMatch.allCases.map(\.rawValue)) {
            aclNomatch = EmqttdACL.NoMatch(rawValue: v)!
        }
        if let t = try s.section("superquery") {
            try t.checkKeys(allowed: ["collection", "super_field", "selector"])
            var q = MongoSuperQuery(query: try Self.query(t, defaultCollection: "mqtt_user"))
            if let f = try Self.fieldName(t, "super_field") { q.superField = f }
            superQuery = q
        }
        if let t = try s.section("authquery") {
            try t.checkKeys(allowed: ["collection", "password_field", "salt_field", "password_hash", "selector"])
            var q = MongoAuthQuery(query: try Self.query(t, defaultCollection: "mqtt_user"))
            if let f = try Self.fieldName(t, "password_field") { q.passwordField = f }
            if let f = try Self.fieldName(t, "salt_field") { q.saltField = f }
            if t.table["password_hash"] != nil { q.passwordHash = try Self.passwordHash(t) }
            authQuery = q
        }
        if let t = try s.section("aclquery") {
            try t.checkKeys(allowed: ["collection", "selector"])
            aclQuery = try Self.query(t, defaultCollection: "mqtt_acl")
        }
        if superQuery != nil && authQuery == nil {
            throw s.error("superquery", "needs authquery (the superuser question follows a successful authentication)")
        }
        if authQuery == nil && aclQuery == nil {
            throw s.error("authquery", "is required (or aclquery): with neither the plugin has nothing to do")
        }
        guard let p = try s.section("mongo_pool") else {
            throw s.error("mongo_pool", "is required: where MongoDB is ([\(plugin).mongo_pool] host, port, database...)")
        }
        pool = try MongoPoolSettings(p)
    }

    static func query(_ t: ConfigSection, defaultCollection: String) throws -> MongoQuery {
        var q = MongoQuery(collection: defaultCollection)
        if let c = try t.string("collection") {
            guard !c.isEmpty, !c.hasPrefix("system."), !c.contains("$"), !c.utf8.contains(0) else {
                throw t.error("collection", "must be a collection name (not empty, no $, not system.*)")
            }
            q.collection = c
        }
        if t.table["selector"] != nil {
            guard let sel = try t.section("selector") else { throw t.error("selector", "must be a table") }
            var fields: [MongoSelector.Field] = []
            for k in sel.keys {
                do { try MongoSelector.check(name: k) } catch { throw sel.error(k, error.message) }
                let v = sel.table[k]!
                if let text = v.string {
                    do { try MongoSelector.check(template: text) } catch { throw sel.error(k, error.message) }
                    fields.append(.init(name: k, term: .template(PlaceholderTemplate(text))))
                } else if let b = v.bool {
                    fields.append(.init(name: k, term: .constant(.bool(b))))
                } else if let i = v.int {
                    fields.append(.init(name: k, term: .constant(.int64(Int64(i)))))
                } else {
                    throw sel.error(k, "must be a string (placeholders %u %c %a %C %d allowed), a boolean or an integer")
                }
            }
            do { q.selector = try MongoSelector(checked: fields) } catch { throw t.error("selector", error.message) }
        }
        return q
    }

    static func fieldName(_ t: ConfigSection, _ k: String) throws -> String? {
        guard let f = try t.string(k) else { return nil }
        do { try MongoSelector.check(name: f) } catch { throw t.error(k, error.message) }
        return f
    }

    static func passwordHash(_ t: ConfigSection) throws -> PasswordCheck {
        let v = t.table["password_hash"]!
        var tokens: [PasswordCheck.Token] = []
        let items: [TOMLValueConvertible] = v.array.map { Array($0) } ?? [v]
        for item in items {
            if let w = item.string { tokens.append(.word(w)) } else if let n = item.int { tokens.append(.number(n)) } else {
                throw t.error("password_hash", "must be a string or an array of strings and integers")
            }
        }
        do { return try PasswordCheck(tokens: tokens) } catch { throw t.error("password_hash", error.message) }
    }

    /// libmongoc URI options the plugin sets from its own (they win over the same options in
    /// `uri`): nothing waits longer than `query_timeout` for a server, a connection or an
    /// answer, so requests are answered `error` within the broker's request timeout.
    public var uriOptions: [(name: String, value: Int32)] {
        let q = Int32(min(queryTimeout * 1000, Double(Int32.max)))
        return [
            ("serverSelectionTimeoutMS", q),
            ("connectTimeoutMS", Int32(min(pool.connectTimeout, queryTimeout) * 1000)),
            ("socketTimeoutMS", q),
        ]
    }
}
