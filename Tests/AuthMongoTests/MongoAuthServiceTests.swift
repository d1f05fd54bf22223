import AuthBackends
import AuthMongo
import Logging
import SidecarKit
import SwiftletIPC
import XCTest

final class MongoAuthServiceTests: XCTestCase {
    static let seed = """
        [auth_mongo]
        ttl_ms = 5000
        [auth_mongo.superquery]
        collection = "mqtt_user"
        super_field = "is_superuser"
        selector = { username = "%u" }
        [auth_mongo.authquery]
        collection = "mqtt_user"
        password_field = "password"
        password_hash = "sha256"
        selector = { username = "%u" }
        [auth_mongo.aclquery]
        collection = "mqtt_acl"
        selector = { username = "%u" }
        [auth_mongo.mongo_pool]
        host = "127.0.0.1"
        """

    func service(_ db: FakeMongo, _ toml: String = MongoAuthServiceTests.seed) throws -> MongoAuthService {
        let s = try AuthMongoSettings(PluginConfig(string: toml, file: "test.toml"))
        return MongoAuthService(settings: s, database: db, logger: Logger(label: "test"))
    }

    func login(_ svc: MongoAuthService, _ user: String?, _ password: String?, id: String = "c1") async -> AuthnAnswer {
        await svc.authenticate(AuthnRequest(client: client(user, id: id), password: password.map { Array($0.utf8) }))
    }

    func acl(_ svc: MongoAuthService, _ access: IPCAccess, _ topic: String, user: String? = "alice", id: String = "c1") async -> IPCDecision {
        await svc.authorize(AuthzRequest(client: client(user, id: id), access: access, topic: topic)).decision
    }

    func testSeedUserDocuments() async throws {
        let db = FakeMongo(["mqtt_user": [
            ["username": .string("alice"), "password": .string(sha256Hex("pw")), "is_superuser": .bool(false)],
            ["username": .string("root"), "password": .string(sha256Hex("rootpw")), "is_superuser": .bool(true)],
            ["username": .string("nopass"), "is_superuser": .bool(true)],
        ]])
        let svc = try service(db)
        let ok = await login(svc, "alice", "pw")
        XCTAssertEqual(ok.decision, .allow)
        XCTAssertFalse(ok.superuser)
        XCTAssertEqual(ok.ttlMs, 5000)
        // superquery has authquery's collection and selector: one find reads both.
        XCTAssertEqual(db.finds.count, 1)
        XCTAssertEqual(db.finds[0].projection, ["password", "is_superuser"])
        XCTAssertEqual(db.finds[0].limit, 1)
        let root = await login(svc, "root", "rootpw")
        XCTAssertEqual(root.decision, .allow)
        XCTAssertTrue(root.superuser)
        let wrong = await login(svc, "alice", "PW")
        XCTAssertEqual(wrong.decision, .deny)
        let unknown = await login(svc, "bob", "pw")
        XCTAssertEqual(unknown.decision, .ignore)
        let noPassword = await login(svc, "alice", nil)
        XCTAssertEqual(noPassword.decision, .deny)
        let noStored = await login(svc, "nopass", "")
        XCTAssertEqual(noStored.decision, .deny)
        let anonymous = await login(svc, nil, "pw")
        XCTAssertEqual(anonymous.decision, .ignore)
    }

    func testSelectorValuesAreStringsNeverOperators() async throws {
        let db = FakeMongo(["mqtt_user": [["username": .string("alice"), "password": .string(sha256Hex("pw"))]]])
        let svc = try service(db)
        for name in ["{\"$ne\": null}", "{\"$gt\": \"\"}", "$where", "this.password != ''"] {
            let a = await login(svc, name, "pw")
            XCTAssertEqual(a.decision, .ignore, name)
            XCTAssertEqual(db.finds.last?.filter, ["username": .string(name)], name)
        }
    }

    func testSaltField() async throws {
        let check = PasswordCheck(.digest(.sha256, salt: .prefix))
        let db = FakeMongo(["mqtt_user": [
            ["username": .string("a"), "password": .string(check.make(Array("pw".utf8), salt: "NaCl")!), "salt": .string("NaCl")],
            ["username": .string("b"), "password": .string(check.make(Array("pw".utf8), salt: "")!)],
            ["username": .string("c"), "password": .string(sha256Hex("pw")), "salt": .int32(7)],
        ]])
        let svc = try service(db, Self.seed.replacingOccurrences(of: "password_hash = \"sha256\"", with: "password_hash = [\"salt\", \"sha256\"]"))
        let a = await login(svc, "a", "pw")
        XCTAssertEqual(a.decision, .allow)
        XCTAssertEqual(db.finds.last?.projection, ["password", "salt", "is_superuser"])
        let b = await login(svc, "b", "pw")
        XCTAssertEqual(b.decision, .allow)   // no salt field: the empty salt
        let c = await login(svc, "c", "pw")
        XCTAssertEqual(c.decision, .error)
        XCTAssertEqual(c.reason, "authquery: salt is int, not a string")
    }

    func testWrongTypesAreAnErrorForThatUser() async throws {
        let db = FakeMongo(["mqtt_user": [
            ["username": .string("num"), "password": .int64(12345)],
            ["username": .string("date"), "password": .other("date")],
            ["username": .string("text"), "password": .string(sha256Hex("pw")), "is_superuser": .string("true")],
            ["username": .string("one"), "password": .string(sha256Hex("pw")), "is_superuser": .int32(1)],
        ]])
        let svc = try service(db)
        let num = await login(svc, "num", "12345")
        XCTAssertEqual(num.decision, .error)
        XCTAssertEqual(num.reason, "authquery: password is long, not a string")
        let date = await login(svc, "date", "x")
        XCTAssertEqual(date.reason, "authquery: password is date, not a string")
        let text = await login(svc, "text", "pw")
        XCTAssertEqual(text.decision, .allow)
        XCTAssertFalse(text.superuser)   // logged: not a boolean
        let one = await login(svc, "one", "pw")
        XCTAssertTrue(one.superuser)
    }

    func testSuperqueryOnAnotherCollection() async throws {
        let db = FakeMongo([
            "mqtt_user": [["username": .string("alice"), "password": .string(sha256Hex("pw"))]],
            "admins": [["name": .string("alice"), "admin": .bool(true)]],
        ])
        let toml = Self.seed.replacingOccurrences(of: """
            collection = "mqtt_user"
            super_field = "is_superuser"
            selector = { username = "%u" }
            """, with: """
            collection = "admins"
            super_field = "admin"
            selector = { name = "%u" }
            """)
        let svc = try service(db, toml)
        let a = await login(svc, "alice", "pw")
        XCTAssertTrue(a.superuser)
        XCTAssertEqual(db.finds.map(\.collection), ["mqtt_user", "admins"])
        // A wrong password: superquery's answer is not used.
        let wrong = await login(svc, "alice", "nope")
        XCTAssertEqual(wrong.decision, .deny)
    }

    func testDatabaseErrorsAnswerError() async throws {
        let db = FakeMongo()
        db.failure = .unavailable("no server")
        let svc = try service(db)
        let a = await login(svc, "alice", "pw")
        XCTAssertEqual(a.decision, .error)
        XCTAssertEqual(a.reason, "authquery: database unavailable: no server")
        let z = await acl(svc, .publish, "t")
        XCTAssertEqual(z, .error)
    }

    func testACLListsAndSeveralDocuments() async throws {
        let db = FakeMongo(["mqtt_acl": [
            ["username": .string("alice"), "clientid": .string("other"),
             "publish": .array([.string("t/1"), .string("t/2")]), "subscribe": .array([.string("user/%u"), .string("client/%c")])],
            ["username": .string("alice"), "pubsub": .array([.string("shared/#")]), "publish": .null],
            ["username": .string("bob"), "pubsub": .array([.string("#")])],
        ]])
        let svc = try service(db)
        let cases: [(IPCAccess, String, IPCDecision)] = [
            (.publish, "t/1", .allow), (.subscribe, "t/1", .deny), (.subscribe, "user/alice", .allow),
            (.subscribe, "client/c1", .allow), (.publish, "client/c1", .deny), (.publish, "shared/x", .allow),
            (.subscribe, "shared/#", .allow), (.publish, "bob/x", .deny),
        ]
        for (access, topic, want) in cases {
            let got = await acl(svc, access, topic)
            XCTAssertEqual(got, want, "\(access) \(topic)")
        }
        XCTAssertEqual(db.finds.last?.projection, ["publish", "subscribe", "pubsub"])
        XCTAssertEqual(db.finds.last?.limit, 1001)
        let anonymous = await acl(svc, .publish, "t/1", user: nil)
        XCTAssertEqual(anonymous, .ignore)   // the selector's %u has no value: not run
    }

    func testACLNomatch() async throws {
        let db = FakeMongo()
        for (nomatch, want) in [("allow", IPCDecision.allow), ("deny", .deny), ("ignore", .ignore)] {
            let svc = try service(db, Self.seed.replacingOccurrences(of: "ttl_ms = 5000", with: "acl_nomatch = \"\(nomatch)\""))
            let got = await acl(svc, .publish, "x")
            XCTAssertEqual(got, want, nomatch)
        }
    }

    func testACLDocumentsOfTheWrongShape() async throws {
        let db = FakeMongo(["mqtt_acl": [
            ["username": .string("notlist"), "publish": .string("t/1")],
            ["username": .string("mixed"), "subscribe": .array([.string("ok"), .int32(7)])],
            ["username": .string("big"), "pubsub": .array((0..<5).map { .string("t/\($0)") })],
            ["username": .string("long"), "pubsub": .array([.string(String(repeating: "x", count: 100))])],
        ]])
        let svc = try service(db, Self.seed.replacingOccurrences(of: "ttl_ms = 5000", with: "max_rows = 3\nmax_field_bytes = 64"))
        for (user, reason) in [("notlist", "aclquery: document 1: publish is string, not an array of topics"),
                               ("mixed", "aclquery: document 1: subscribe.1 is int, not a string"),
                               ("big", "aclquery: document 1: pubsub holds 5 elements, over max_rows (3)"),
                               ("long", "aclquery: document 1: pubsub.0 holds 100 bytes, over max_field_bytes (64)")] {
            let a = await svc.authorize(AuthzRequest(client: client(user), access: .subscribe, topic: "ok"))
            XCTAssertEqual(a.decision, .error, user)
            XCTAssertEqual(a.reason, reason, user)
        }
        for _ in 0..<4 { db.insert("mqtt_acl", ["username": .string("many"), "pubsub": .array([.string("t")])]) }
        let many = await svc.authorize(AuthzRequest(client: client("many"), access: .publish, topic: "t"))
        XCTAssertEqual(many.reason, "aclquery: more than max_rows (3) documents")
    }

    func testSelectorRendering() throws {
        let sel = try MongoSelector(templates: [("username", "%u"), ("clientid", "%c"), ("ip", "%a"), ("tag", "user:%u")])
        let v = PlaceholderValues(username: "{\"$ne\": null}", clientId: "c/#", ipAddress: "::1")
        XCTAssertEqual(sel.render(v), ["username": .string("{\"$ne\": null}"), "clientid": .string("c/#"),
                                       "ip": .string("::1"), "tag": .string("user:{\"$ne\": null}")])
        XCTAssertNil(sel.render(PlaceholderValues(username: nil, clientId: "c", ipAddress: "a")))
        XCTAssertNil(try MongoSelector(templates: [("cn", "%C")]).render(v))   // no certificate
        XCTAssertEqual(sel.described, "{username: \"%u\", clientid: \"%c\", ip: \"%a\", tag: \"user:%u\"}")
        XCTAssertThrowsError(try MongoSelector(templates: [("$or", "%u")]))
        XCTAssertThrowsError(try MongoSelector(templates: [("a..b", "%u")]))
        XCTAssertThrowsError(try MongoSelector(templates: []))
    }
}
