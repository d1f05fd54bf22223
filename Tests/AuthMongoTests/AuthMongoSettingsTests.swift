import AuthBackends
import AuthMongo
import Foundation
import SidecarKit
import XCTest

final class AuthMongoSettingsTests: XCTestCase {
    func settings(_ toml: String) throws -> AuthMongoSettings {
        try AuthMongoSettings(PluginConfig(string: toml, file: "test.toml"))
    }

    func problem(_ toml: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try settings(toml)
            XCTFail("accepted", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    func assertProblem(_ toml: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        let p = problem(toml, file: file, line: line)
        XCTAssertTrue(p.contains(expected), "\(p.debugDescription) does not say \(expected.debugDescription)", file: file, line: line)
    }

    static let pool = "[auth_mongo.mongo_pool]\nhost = \"127.0.0.1\"\n"

    func testTheShippedFileIsTheSeeds() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("etc/plugins/auth_mongo.toml")
        let s = try AuthMongoSettings(PluginConfig.load(path: url.path))
        XCTAssertEqual(s.superQuery?.query.collection, "mqtt_user")
        XCTAssertEqual(s.superQuery?.superField, "is_superuser")
        XCTAssertEqual(s.authQuery?.passwordField, "password")
        XCTAssertEqual(s.authQuery?.passwordHash, .emqttdDefault)
        XCTAssertEqual(s.authQuery?.query.selector, .username)
        XCTAssertEqual(s.aclQuery, MongoQuery(collection: "mqtt_acl"))
        XCTAssertEqual(s.aclNomatch, .deny)
        XCTAssertEqual(s.pool.hosts, ["127.0.0.1"])
        XCTAssertEqual(s.pool.port, 27017)
        XCTAssertNil(s.pool.login)
        XCTAssertEqual(s.pool.connectionString, "mongodb://127.0.0.1:27017/")
    }

    func testEmptyQueryTablesAreTheSeedsDefaults() throws {
        let s = try settings("[auth_mongo]\n[auth_mongo.authquery]\n[auth_mongo.superquery]\n[auth_mongo.aclquery]\n" + Self.pool)
        XCTAssertEqual(s.authQuery, MongoAuthQuery())
        XCTAssertEqual(s.superQuery, MongoSuperQuery())
        XCTAssertEqual(s.aclQuery, MongoQuery(collection: "mqtt_acl"))
    }

    func testSeveralHostsPortsAndCredentials() throws {
        let s = try settings("""
            [auth_mongo]
            query_timeout = 1.5
            [auth_mongo.authquery]
            password_hash = ["pbkdf2", "sha256", 1000, 20]
            selector = { username = "%u", clientid = "%c", active = true, tier = 2 }
            [auth_mongo.mongo_pool]
            host = ["db1", "db2:27018", "[::1]", "[::1]:27019"]
            port = 27100
            login = "mqtt"
            password = "p@ss:/word"
            auth_source = "admin"
            connect_timeout = 5
            """)
        XCTAssertEqual(s.pool.connectionString, "mongodb://db1:27100,db2:27018,[::1]:27100,[::1]:27019/")
        XCTAssertEqual(s.pool.login, "mqtt")
        XCTAssertEqual(s.pool.password, "p@ss:/word")
        XCTAssertEqual(s.pool.authSource, "admin")
        XCTAssertEqual(s.authQuery?.passwordHash.scheme, .pbkdf2(.sha256, iterations: 1000, keyLength: 20))
        let fields = s.authQuery!.query.selector.fields
        XCTAssertEqual(Set(fields.map(\.name)), ["username", "clientid", "active", "tier"])
        XCTAssertEqual(fields.first { $0.name == "active" }?.term, .constant(.bool(true)))
        XCTAssertEqual(fields.first { $0.name == "tier" }?.term, .constant(.int64(2)))
        // Nothing waits longer than query_timeout; the connect timeout is capped by it.
        XCTAssertEqual(s.uriOptions.map(\.name), ["serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS"])
        XCTAssertEqual(s.uriOptions.map(\.value), [1500, 1500, 1500])
        XCTAssertEqual(s.pool.described, "mqtt@db1:27100,db2:27018,[::1]:27100,[::1]:27019 database mqtt")
    }

    func testURIInsteadOfTheOptions() throws {
        let s = try settings("[auth_mongo]\n[auth_mongo.aclquery]\n[auth_mongo.mongo_pool]\nuri = \"mongodb://u:secret@h1,h2/admin?replicaSet=rs0\"\n")
        XCTAssertEqual(s.pool.connectionString, "mongodb://u:secret@h1,h2/admin?replicaSet=rs0")
        XCTAssertEqual(s.pool.described, "mongodb://u:***@h1,h2/admin?replicaSet=rs0 database mqtt")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\n[auth_mongo.mongo_pool]\nuri = \"mongodb://h\"\nhost = \"x\"\n", "key 'auth_mongo.mongo_pool.host': is part of uri")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\n[auth_mongo.mongo_pool]\nuri = \"http://h\"\n", "must start with mongodb://")
    }

    func testTLSOptions() throws {
        let s = try settings("[auth_mongo]\n[auth_mongo.aclquery]\n" + Self.pool
            + "ssl = true\n[auth_mongo.mongo_pool.ssl_opts]\ncafile = \"/ca.pem\"\ncertfile = \"/client.pem\"\nallow_invalid_hostnames = true\n")
        XCTAssertTrue(s.pool.tls)
        XCTAssertEqual(s.pool.tlsCAFile, "/ca.pem")
        XCTAssertEqual(s.pool.tlsCertificateKeyFile, "/client.pem")
        XCTAssertTrue(s.pool.tlsAllowInvalidHostnames)
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\n" + Self.pool
            + "ssl = true\n[auth_mongo.mongo_pool.ssl_opts]\nkeyfile = \"/k.pem\"\n", "one PEM file")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\n" + Self.pool
            + "[auth_mongo.mongo_pool.ssl_opts]\ncafile = \"/ca.pem\"\n", "without ssl = true")
    }

    func testRefusals() {
        let acl = "[auth_mongo]\n[auth_mongo.aclquery]\n"
        assertProblem("[auth_mongo]\n" + Self.pool, "key 'auth_mongo.authquery': is required")
        assertProblem("[auth_mongo]\n[auth_mongo.superquery]\n[auth_mongo.aclquery]\n" + Self.pool, "needs authquery")
        assertProblem(acl, "key 'auth_mongo.mongo_pool': is required")
        assertProblem("[auth_mongo]\nbogus = 1\n", "unknown key")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\nselector = { \"$where\" = \"%u\" }\n" + Self.pool, "key 'auth_mongo.aclquery.selector.$where': $where: a field name must not start with $")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\nselector = { password = \"%P\" }\n" + Self.pool, "%P")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\nselector = { username = [\"%u\"] }\n" + Self.pool, "must be a string")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\nselector = {}\n" + Self.pool, "at least one field")
        assertProblem("[auth_mongo]\n[auth_mongo.aclquery]\ncollection = \"system.users\"\n" + Self.pool, "collection")
        assertProblem("[auth_mongo]\n[auth_mongo.authquery]\npassword_field = \"$x\"\n" + Self.pool, "password_field")
        assertProblem("[auth_mongo]\n[auth_mongo.authquery]\npassword_hash = \"rot13\"\n" + Self.pool, "password_hash")
        for host in ["a/b", "u@h", "h,i", "::1", "h:0", "h:x", "", "[::1"] {
            assertProblem(acl + "[auth_mongo.mongo_pool]\nhost = \(String(reflecting: host))\n", "auth_mongo.mongo_pool.host")
        }
        assertProblem(acl + "[auth_mongo.mongo_pool]\nhost = []\n", "at least one host")
        assertProblem(acl + "[auth_mongo.mongo_pool]\npassword = \"x\"\n", "needs login")
        assertProblem(acl + "[auth_mongo.mongo_pool]\nauto_reconnect = false\n", "always reconnects")
        assertProblem(acl + "[auth_mongo.mongo_pool]\ndatabase = \"a.b\"\n", "database")
    }
}
