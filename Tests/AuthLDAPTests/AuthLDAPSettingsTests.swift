import AuthBackends
import AuthLDAP
import SidecarKit
import XCTest

/// `[auth_ldap]` as emqttd_auth_ldap users write it, search mode, and what is refused.
final class AuthLDAPSettingsTests: XCTestCase {
    func settings(_ toml: String) throws -> AuthLDAPSettings {
        try AuthLDAPSettings(PluginConfig(string: toml, file: "auth_ldap.toml"))
    }

    func testTheSeedsOptions() throws {
        let s = try settings("""
            [auth_ldap]
            servers = ["localhost"]
            port = 389
            timeout = 30
            user_dn = "uid=$u,ou=People,dc=example,dc=com"
            ssl = false
            """)
        XCTAssertEqual(s.servers, [LDAPServer(host: "localhost", port: 389)])
        XCTAssertEqual(s.timeout, 30)
        guard case .bind(let t, let source) = s.mode else { return XCTFail("bind mode") }
        XCTAssertEqual(source, "uid=$u,ou=People,dc=example,dc=com")
        XCTAssertEqual(t.placeholders, [.username])
        XCTAssertFalse(s.answersACL)
        XCTAssertNil(s.search)
    }

    func testPercentUAndServersWithPortsAndSSLDefaultPort() throws {
        let s = try settings("""
            [auth_ldap]
            servers = ["ldap1.example.com", "10.0.0.2:1389", "[2001:db8::1]:1636", "::1"]
            user_dn = "cn=%u,dc=example,dc=com"
            ssl = true
            [auth_ldap.sslopts]
            cacertfile = "/etc/ssl/ca.pem"
            certfile = "/etc/ssl/c.pem"
            keyfile = "/etc/ssl/c.key"
            verify = "verify_none"
            """)
        XCTAssertEqual(s.port, 636)
        XCTAssertEqual(s.servers.map(\.description), ["ldap1.example.com:636", "10.0.0.2:1389", "[2001:db8::1]:1636", "[::1]:636"])
        XCTAssertEqual(s.servers[2].uri(ssl: true), "ldaps://[2001:db8::1]:1636")
        XCTAssertEqual(s.servers[0].uri(ssl: false), "ldap://ldap1.example.com:636")
        XCTAssertEqual(s.tls.caCertFile, "/etc/ssl/ca.pem")
        XCTAssertFalse(s.tls.verifyPeer)
    }

    func testSearchMode() throws {
        let s = try settings("""
            [auth_ldap]
            servers = ["127.0.0.1"]
            starttls = true
            bind_dn = "cn=swiftlet,dc=example,dc=com"
            bind_password = "s3cret"
            base_dn = "ou=People,dc=example,dc=com"
            filter = "(&(objectClass=posixAccount)(uid=%u))"
            scope = "one"
            unknown_user = "deny"
            superuser_group = "cn=mqtt-admins,ou=Groups,dc=example,dc=com"
            publish_attribute = "mqttPublishTopic"
            pubsub_attribute = "mqttPubSubTopic"
            acl_nomatch = "allow"
            pool_size = 2
            keep_alive = false
            """)
        guard let m = s.search else { return XCTFail("search mode") }
        XCTAssertEqual(m.bindDN, "cn=swiftlet,dc=example,dc=com")
        XCTAssertEqual(m.scope, .one)
        XCTAssertTrue(m.unknownUserDenies)
        XCTAssertEqual(m.superuserGroup, "cn=mqtt-admins,ou=Groups,dc=example,dc=com")
        XCTAssertEqual(m.aclAttributes.map(\.name), ["mqttPublishTopic", "mqttPubSubTopic"])
        XCTAssertTrue(s.answersACL)
        XCTAssertEqual(s.aclNomatch, .allow)
        XCTAssertEqual(s.port, 389)
        XCTAssertTrue(s.startTLS)
        XCTAssertNil(s.keepAlive)
        XCTAssertFalse(s.described.contains("s3cret"))
    }

    func testRefusals() {
        let cases: [(String, String)] = [
            ("", "[auth_ldap]"),
            ("[auth_ldap]\nservers = [\"h\"]", "user_dn"),
            ("[auth_ldap]\nuser_dn = \"uid=x,dc=e\"", "needs a placeholder"),
            ("[auth_ldap]\nuser_dn = \"uid=%P,dc=e\"", "%P is not available"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nfilter = \"(uid=%u)\"", "belongs to search mode"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nacl_nomatch = \"allow\"", "bind mode answers no ACL"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nssl = true\nstarttls = true", "choose one"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\n[auth_ldap.sslopts]\ncacertfile = \"/x\"", "has no effect"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nssl = true\n[auth_ldap.sslopts]\ncertfile = \"/x\"", "go together"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nssl = true\n[auth_ldap.sslopts]\nverify = \"yes\"", "verify_peer"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nservers = []", "at least one"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nservers = [\"ldap://h\"]", "is a URI"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nservers = [\"h:0\"]", "is not a host"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nservers = [\"[::1\"]", "is not a host"),
            ("[auth_ldap]\nuser_dn = \"uid=$u\"\nbogus = 1", "unknown key"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase_dn = \"dc=e\"", "filter"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbase_dn = \"dc=e\"\nfilter = \"(uid=%u)\"", "unauthenticated bind"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"\"\nbase_dn = \"dc=e\"\nfilter = \"(uid=%u)\"", "unauthenticated bind"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nfilter = \"(uid=%u)\"", "base_dn"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase_dn = \"dc=e\"\nfilter = \"uid=%u\"", "in parentheses"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase_dn = \"dc=e\"\nfilter = \"(uid=%u)\"\nscope = \"all\"", "scope"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase_dn = \"dc=e\"\nfilter = \"(uid=%u)\"\nacl_nomatch = \"deny\"", "needs publish_attribute"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase_dn = \"dc=e\"\nfilter = \"(uid=%u)\"\npublish_attribute = \"a b\"", "attribute name"),
            ("[auth_ldap]\nbind_dn = \"cn=s\"\nbind_password = \"p\"\nbase_dn = \"dc=e\"\nfilter = \"(uid=%u)\"\nunknown_user = \"allow\"", "unknown_user"),
        ]
        for (toml, message) in cases {
            XCTAssertThrowsError(try settings(toml), toml) { e in
                XCTAssertTrue("\(e)".contains(message), "\(toml)\n=> \(e)")
            }
        }
    }
}
