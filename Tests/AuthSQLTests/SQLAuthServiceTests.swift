import AuthBackends
import AuthSQL
import Logging
import SidecarKit
import XCTest

/// A database in memory answering by query kind.
struct FakeDatabase: SQLDatabase {
    var answers: [SQLQueryKind: Result<SQLResult, BackendError>]
    let seen = Seen()
    final class Seen: @unchecked Sendable {
        var calls: [(SQLQueryKind, [[UInt8]?])] = []
        let lock = NSLock()
        func add(_ k: SQLQueryKind, _ p: [[UInt8]?]) { lock.lock(); calls.append((k, p)); lock.unlock() }
    }

    func run(_ kind: SQLQueryKind, parameters: [[UInt8]?]) async throws -> SQLResult {
        seen.add(kind, parameters)
        guard let a = answers[kind] else { return SQLResult(columns: [], rows: []) }
        return try a.get()
    }
}

private func client(_ user: String? = "alice", id: String = "c1", ip: String = "10.0.0.1") -> IPCClient {
    IPCClient(clientId: id, username: user, peerAddress: ip, peerPort: 1, protocolLevel: 4, listener: "tcp")
}

final class SQLAuthServiceTests: XCTestCase {
    func settings(_ toml: String, plugin: String = "auth_mysql") throws -> SQLSettings {
        try SQLSettings(PluginConfig(string: toml, file: "test.toml"), plugin: plugin)
    }

    let seedMySQL = """
    [auth_mysql]
    superquery = "select is_superuser from mqtt_user where username = '%u' limit 1"
    authquery = "select password, salt from mqtt_user where username = '%u' limit 1"
    password_hash = ["salt", "sha256"]
    aclquery = "select allow, ipaddr, username, clientid, access, topic from mqtt_acl where ipaddr = '%a' or username = '%u' or username = '$all' or clientid = '%c'"
    acl_nomatch = "deny"
    ttl_ms = 5000
    [auth_mysql.mysql_pool]
    pool_size = 4
    auto_reconnect = 1
    host = "127.0.0.1"
    port = 3307
    user = "mqtt"
    password = "pw"
    database = "mqtt"
    encoding = "utf8"
    keep_alive = true
    """

    func testSettingsFromTheSeedsNames() throws {
        let s = try settings(seedMySQL)
        XCTAssertEqual(s.driver, .mysql)
        XCTAssertEqual(s.pool.size, 4)
        XCTAssertEqual(s.pool.port, 3307)
        XCTAssertEqual(s.authQuery?.sql, "select password, salt from mqtt_user where username = ? limit 1")
        XCTAssertEqual(s.aclQuery?.parameters, [.ipAddress, .username, .clientId])
        XCTAssertEqual(s.passwordHash.scheme, .digest(.sha256, salt: .prefix))
        XCTAssertEqual(s.aclNomatch, .deny)
        let pg = try settings("""
        [auth_pgsql]
        authquery = "select password from mqtt_user where username = '%u' limit 1"
        password_hash = ["pbkdf2", "sha256", 1000, 20]
        [auth_pgsql.pgsql_pool]
        username = "feng"
        ssl = false
        """, plugin: "auth_pgsql")
        XCTAssertEqual(pg.driver, .pgsql)
        XCTAssertEqual(pg.pool.user, "feng")
        XCTAssertEqual(pg.pool.port, 5432)
        XCTAssertEqual(pg.authQuery?.sql, "select password from mqtt_user where username = $1 limit 1")
        XCTAssertNil(pg.aclQuery)
        XCTAssertEqual(pg.aclNomatch, .allow)
    }

    func testSettingsErrorsNameTheKey() {
        let bad: [(String, String)] = [
            ("[auth_mysql]\nauthquery = \"select 1\"\n", "auth_mysql.mysql_pool"),
            ("[auth_mysql]\nauthquery = \"select 1\"\n[auth_mysql.mysql_pool]\n[auth_mysql.pgsql_pool]\n", "auth_mysql.mysql_pool"),
            ("[auth_mysql]\nauthquery = \"select 1 where u = 'x%u'\"\n[auth_mysql.mysql_pool]\n", "auth_mysql.authquery"),
            ("[auth_mysql]\nauthquery = \"select 1\"\npassword_hash = \"sha3\"\n[auth_mysql.mysql_pool]\n", "auth_mysql.password_hash"),
            ("[auth_mysql]\nauthquery = \"select 1\"\nacl_nomatch = \"maybe\"\n[auth_mysql.mysql_pool]\n", "auth_mysql.acl_nomatch"),
            ("[auth_mysql]\n[auth_mysql.mysql_pool]\n", "auth_mysql.authquery"),
            ("[auth_mysql]\nauthquery = \"select 1\"\n[auth_mysql.mysql_pool]\nusername = \"x\"\n", "auth_mysql.mysql_pool.username"),
            ("[other]\n", "auth_mysql"),
        ]
        for (toml, key) in bad {
            XCTAssertThrowsError(try settings(toml), toml) { e in
                XCTAssertEqual((e as? SidecarConfigError)?.key, key, "\(e)")
            }
        }
    }

    func service(_ answers: [SQLQueryKind: Result<SQLResult, BackendError>]) throws -> (SQLAuthService, FakeDatabase) {
        let db = FakeDatabase(answers: answers)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return (SQLAuthService(settings: try settings(seedMySQL), database: db, logger: logger), db)
    }

    func testAuthentication() async throws {
        // sha256("salty" + "secret")
        let stored = "851a0c42efcc10ae616f812c3d54b05bb61838c84a01b9a01292c1fba5e6aed0"
        let (s, db) = try service([
            .auth: .success(SQLResult(columns: ["password", "salt"], rows: [[stored, "salty"]])),
            .superuser: .success(SQLResult(columns: ["is_superuser"], rows: [["1"]])),
        ])
        let ok = await s.authenticate(AuthnRequest(client: client(), password: Array("secret".utf8)))
        XCTAssertEqual(ok, .allow(superuser: true, ttlMs: 5000, reason: "authquery"))
        XCTAssertEqual(db.seen.calls.first?.1, [Array("alice".utf8)], "the username, bound")
        let bad = await s.authenticate(AuthnRequest(client: client(), password: Array("wrong".utf8)))
        XCTAssertEqual(bad.decision, .deny)
        let none = await s.authenticate(AuthnRequest(client: client(), password: nil))
        XCTAssertEqual(none.decision, .deny)
        let anon = await s.authenticate(AuthnRequest(client: client(nil), password: nil))
        XCTAssertEqual(anon, .ignore)
    }

    func testNoRowIgnoresAndErrorsAreErrors() async throws {
        let (s, _) = try service([.auth: .success(SQLResult(columns: ["password", "salt"], rows: []))])
        let r = await s.authenticate(AuthnRequest(client: client(), password: [1]))
        XCTAssertEqual(r, .ignore)
        let (down, _) = try service([.auth: .failure(.unavailable("x")), .acl: .failure(.timeout("y"))])
        let a = await down.authenticate(AuthnRequest(client: client(), password: [1]))
        XCTAssertEqual(a.decision, .error)
        let z = await down.authorize(AuthzRequest(client: client(), access: .publish, topic: "t"))
        XCTAssertEqual(z.decision, .error)
    }

    func testACLRowsFirstMatchAndNomatch() async throws {
        let rows: [[String?]] = [
            ["1", nil, "$all", nil, "2", "#"],
            ["0", nil, "$all", nil, "1", "$SYS/#"],
            ["0", nil, "$all", nil, "1", "eq #"],
            ["x", nil, "$all", nil, "1", "bad row"],
            ["1", nil, "alice", nil, "1", "users/%u/#"],
        ]
        let (s, db) = try service([.acl: .success(SQLResult(columns: ["allow", "ipaddr", "username", "clientid", "access", "topic"], rows: rows))])
        func ask(_ a: IPCAccess, _ t: String, _ c: IPCClient = client()) async -> IPCDecision {
            await s.authorize(AuthzRequest(client: c, access: a, topic: t)).decision
        }
        let publish = await ask(.publish, "a/b")
        XCTAssertEqual(publish, .allow)
        let sys = await ask(.subscribe, "$SYS/x")
        XCTAssertEqual(sys, .deny)
        let hash = await ask(.subscribe, "#")
        XCTAssertEqual(hash, .deny)
        let own = await ask(.subscribe, "users/alice/x")
        XCTAssertEqual(own, .allow)
        let plus = await ask(.subscribe, "users/+/x", client("+"))
        XCTAssertEqual(plus, .deny, "acl_nomatch deny: user + never matches users/+/x")
        let other = await ask(.subscribe, "other")
        XCTAssertEqual(other, .deny, "acl_nomatch")
        XCTAssertEqual(db.seen.calls.last?.1, [Array("10.0.0.1".utf8), Array("alice".utf8), Array("c1".utf8)])
    }
}
