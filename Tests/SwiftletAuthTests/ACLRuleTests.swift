import SwiftletConfig
import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import XCTest
@testable import SwiftletAuth

// emqttd-style ACL rules: who, access, topics (%u, %c, `eq`), first match wins, the embedded
// defaults, and the rules file parser.

private func client(_ id: String = "dev-1", user: String? = "alice", ip: String = "10.1.2.3") -> ClientInfo {
    ClientInfo(clientId: id, username: user, peerAddress: ip)
}

/// The first rule's answer, as BuiltinAuth folds them (nil: no rule matched).
private func decide(_ rules: [ACLRule], _ c: ClientInfo, _ a: ACLAccess, _ topic: String) -> Bool? {
    for r in rules { if let d = r.decide(c, access: a, topic: topic) { return d } }
    return nil
}

final class ACLRuleTests: XCTestCase {
    // MARK: emqttd's defaults

    func testDefaultsLetDashboardReadSys() {
        let dash = client("dash", user: "dashboard")
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, dash, .subscribe, "$SYS/brokers/n/clients"), true)
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, client(), .subscribe, "$SYS/brokers/n/clients"), false)
    }

    func testDefaultsLetLocalhostDoAnything() {
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let local = client(user: nil, ip: ip)
            XCTAssertEqual(decide(ACLRule.emqttdDefaults, local, .subscribe, "$SYS/#"), true, ip)
            XCTAssertEqual(decide(ACLRule.emqttdDefaults, local, .subscribe, "#"), true, ip)
            XCTAssertEqual(decide(ACLRule.emqttdDefaults, local, .publish, "a/b"), true, ip)
        }
    }

    func testDefaultsDenyOthersSysAndExactHash() {
        let remote = client(ip: "192.0.2.7")
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .subscribe, "$SYS/#"), false)
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .subscribe, "$SYS/brokers"), false)
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .subscribe, "#"), false, "exactly # is refused")
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .subscribe, "a/#"), true)
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .subscribe, "+/b"), true)
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .publish, "#"), true, "the deny rule is subscribe only")
        XCTAssertEqual(decide(ACLRule.emqttdDefaults, remote, .publish, "a/b"), true)
        XCTAssertEqual(ACLRule.emqttdDefaults.count, 5)
    }

    // MARK: who

    func testUserRule() {
        let r = ACLRule(allow: true, who: .user("alice"))
        XCTAssertEqual(r.decide(client(user: "alice"), access: .publish, topic: "x"), true)
        XCTAssertNil(r.decide(client(user: "bob"), access: .publish, topic: "x"))
        XCTAssertNil(r.decide(client(user: nil), access: .publish, topic: "x"), "anonymous is nobody's user")
    }

    func testClientIdRule() {
        let r = ACLRule(allow: false, who: .clientId("dev-1"))
        XCTAssertEqual(r.decide(client("dev-1"), access: .subscribe, topic: "x"), false)
        XCTAssertNil(r.decide(client("dev-2"), access: .subscribe, topic: "x"))
    }

    func testIpaddrRuleWithAndWithoutPrefix() throws {
        let exact = ACLRule(allow: true, who: .ipaddr(try XCTUnwrap(CIDR("10.1.2.3"))))
        XCTAssertEqual(exact.decide(client(ip: "10.1.2.3"), access: .publish, topic: "x"), true)
        XCTAssertNil(exact.decide(client(ip: "10.1.2.4"), access: .publish, topic: "x"))

        let net = ACLRule(allow: true, who: .ipaddr(try XCTUnwrap(CIDR("10.0.0.0/8"))))
        XCTAssertEqual(net.decide(client(ip: "10.255.0.1"), access: .publish, topic: "x"), true)
        XCTAssertEqual(net.decide(client(ip: "::ffff:10.9.9.9"), access: .publish, topic: "x"), true, "IPv4-mapped peer")
        XCTAssertNil(net.decide(client(ip: "11.0.0.1"), access: .publish, topic: "x"))
        XCTAssertNil(net.decide(client(ip: "fe80::1"), access: .publish, topic: "x"))
        XCTAssertNil(net.decide(client(ip: "not an address"), access: .publish, topic: "x"))
    }

    func testCIDRParsingAndMasks() throws {
        XCTAssertTrue(try XCTUnwrap(CIDR("192.168.1.0/24")).contains("192.168.1.200"))
        XCTAssertFalse(try XCTUnwrap(CIDR("192.168.1.0/24")).contains("192.168.2.1"))
        XCTAssertTrue(try XCTUnwrap(CIDR("192.168.1.128/25")).contains("192.168.1.129"))
        XCTAssertFalse(try XCTUnwrap(CIDR("192.168.1.128/25")).contains("192.168.1.127"))
        XCTAssertTrue(try XCTUnwrap(CIDR("172.16.0.0/12")).contains("172.31.255.255"))
        XCTAssertFalse(try XCTUnwrap(CIDR("172.16.0.0/12")).contains("172.32.0.0"))
        XCTAssertTrue(try XCTUnwrap(CIDR("0.0.0.0/0")).contains("8.8.8.8"))
        XCTAssertTrue(try XCTUnwrap(CIDR("2001:db8::/32")).contains("2001:db8:1::5"))
        XCTAssertFalse(try XCTUnwrap(CIDR("2001:db8::/32")).contains("2001:db9::1"))
        XCTAssertFalse(try XCTUnwrap(CIDR("2001:db8::/32")).contains("10.0.0.1"))
        XCTAssertTrue(try XCTUnwrap(CIDR("::1")).contains("::1"))
        XCTAssertNil(CIDR("10.0.0.0/33"))
        XCTAssertNil(CIDR("10.0.0.0/-1"))
        XCTAssertNil(CIDR("10.0.0.0/x"))
        XCTAssertNil(CIDR("::/129"))
        XCTAssertNil(CIDR("localhost"))
        XCTAssertNil(CIDR(""))
    }

    func testAllRuleMatchesEveryone() {
        let r = ACLRule(allow: false, who: .all, access: .pubsub, topics: ["secret/#"])
        XCTAssertEqual(r.decide(client(user: nil, ip: "127.0.0.1"), access: .publish, topic: "secret/x"), false)
        XCTAssertEqual(r.decide(client(user: "root"), access: .subscribe, topic: "secret/#"), false)
        XCTAssertNil(r.decide(client(), access: .publish, topic: "public/x"))
    }

    // MARK: access

    func testAccessKinds() {
        let pub = ACLRule(allow: true, access: .publish, topics: ["t"])
        let sub = ACLRule(allow: true, access: .subscribe, topics: ["t"])
        let both = ACLRule(allow: true, access: .pubsub, topics: ["t"])
        XCTAssertEqual(pub.decide(client(), access: .publish, topic: "t"), true)
        XCTAssertNil(pub.decide(client(), access: .subscribe, topic: "t"))
        XCTAssertNil(sub.decide(client(), access: .publish, topic: "t"))
        XCTAssertEqual(sub.decide(client(), access: .subscribe, topic: "t"), true)
        XCTAssertEqual(both.decide(client(), access: .publish, topic: "t"), true)
        XCTAssertEqual(both.decide(client(), access: .subscribe, topic: "t"), true)
        XCTAssertEqual(ACLRule(allow: true).access, .pubsub)
        XCTAssertEqual(ACLRule(allow: true).topics, ["#"])
    }

    // MARK: topics

    func testUsernameAndClientIdSubstitution() {
        let r = ACLRule(allow: true, topics: ["users/%u/#", "devices/%c/+"])
        XCTAssertEqual(r.decide(client("dev-1", user: "alice"), access: .publish, topic: "users/alice/inbox"), true)
        XCTAssertNil(r.decide(client("dev-1", user: "alice"), access: .publish, topic: "users/bob/inbox"))
        XCTAssertEqual(r.decide(client("dev-1", user: "alice"), access: .subscribe, topic: "devices/dev-1/state"), true)
        XCTAssertNil(r.decide(client("dev-1", user: "alice"), access: .subscribe, topic: "devices/dev-2/state"))
        // Anonymous clients never match %u (not even the literal "%u" or an empty level).
        XCTAssertNil(r.decide(client(user: nil), access: .publish, topic: "users/%u/x"))
        XCTAssertNil(r.decide(client(user: nil), access: .publish, topic: "users//x"))
        XCTAssertNil(r.decide(client(user: ""), access: .publish, topic: "users//x"))
        // Both in one filter.
        let both = ACLRule(allow: true, topics: ["%u/%c"])
        XCTAssertEqual(both.decide(client("d9", user: "carol"), access: .publish, topic: "carol/d9"), true)
        XCTAssertNil(both.decide(client("d9", user: "carol"), access: .publish, topic: "carol/d8"))
    }

    /// Issue 11: `%u`/`%c` are substituted literally; a `+`, `#` or `/` in the name never
    /// widens the rule, for allow and deny rules alike, and such clients are still served.
    func testSubstitutedNamesNeverWidenARule() {
        let own = ACLRule(allow: true, topics: ["client/%c"])
        XCTAssertNil(own.decide(client("#"), access: .subscribe, topic: "client/#"), "client id # may not read client/#")
        XCTAssertNil(own.decide(client("+"), access: .subscribe, topic: "client/+"))
        XCTAssertNil(own.decide(client("#"), access: .publish, topic: "client/other"))
        XCTAssertNil(own.decide(client("#"), access: .subscribe, topic: "client/other"))
        XCTAssertEqual(own.decide(client("dev-1"), access: .subscribe, topic: "client/dev-1"), true)

        let nope = ACLRule(allow: true, topics: ["nope/%u"])
        XCTAssertNil(nope.decide(client(user: "+"), access: .publish, topic: "nope/x"))
        XCTAssertNil(nope.decide(client(user: "+"), access: .subscribe, topic: "nope/x"))
        XCTAssertNil(nope.decide(client(user: "+"), access: .subscribe, topic: "nope/+"), "the filter nope/+ reads nope/x")
        XCTAssertEqual(nope.decide(client(user: "+"), access: .publish, topic: "nope/+"), true, "only the literal topic")
        XCTAssertNil(nope.decide(client(user: "#"), access: .publish, topic: "nope/a/b"))
        XCTAssertNil(nope.decide(client(user: "#"), access: .subscribe, topic: "nope/#"))
        // A slash in the name is part of the literal value: exactly those levels.
        XCTAssertEqual(nope.decide(client(user: "a/b"), access: .publish, topic: "nope/a/b"), true)
        XCTAssertNil(nope.decide(client(user: "a/b"), access: .publish, topic: "nope/a"))
        XCTAssertNil(nope.decide(client(user: "a/b"), access: .publish, topic: "nope/a/b/c"))
        XCTAssertNil(nope.decide(client(user: "a/+"), access: .publish, topic: "nope/a/x"))

        // Deny rules alike: user + is denied nope/+ only, not everyone's nope/x.
        let deny = ACLRule(allow: false, topics: ["nope/%u"])
        XCTAssertNil(deny.decide(client(user: "+"), access: .publish, topic: "nope/x"))
        XCTAssertEqual(deny.decide(client(user: "+"), access: .publish, topic: "nope/+"), false)

        // One pass: a name containing %c is not substituted again.
        let both = ACLRule(allow: true, topics: ["%u/%c"])
        XCTAssertNil(both.decide(client("dev", user: "%c"), access: .publish, topic: "dev/dev"))
        XCTAssertEqual(both.decide(client("dev", user: "%c"), access: .publish, topic: "%c/dev"), true)
        // Within a level: the whole level is literal.
        let inLevel = ACLRule(allow: true, topics: ["u-%u/#"])
        XCTAssertEqual(inLevel.decide(client(user: "x"), access: .publish, topic: "u-x/1"), true)
        XCTAssertNil(inLevel.decide(client(user: "+"), access: .publish, topic: "u-x/1"))
    }

    func testEqMatchesTheFilterLiterally() {
        let r = ACLRule(allow: false, access: .subscribe, topics: ["eq #", "eq a/+"])
        XCTAssertEqual(r.decide(client(), access: .subscribe, topic: "#"), false)
        XCTAssertNil(r.decide(client(), access: .subscribe, topic: "a/#"), "`eq #` is not a wildcard")
        XCTAssertNil(r.decide(client(), access: .subscribe, topic: "x"))
        XCTAssertEqual(r.decide(client(), access: .subscribe, topic: "a/+"), false)
        XCTAssertNil(r.decide(client(), access: .subscribe, topic: "a/b"), "`eq a/+` matches only the filter a/+")
        // No substitution inside eq.
        let u = ACLRule(allow: true, topics: ["eq users/%u"])
        XCTAssertNil(u.decide(client(user: "alice"), access: .publish, topic: "users/alice"))
        XCTAssertEqual(u.decide(client(user: "alice"), access: .publish, topic: "users/%u"), true)
    }

    func testSysIsNotMatchedByLeadingWildcards() {
        let hash = ACLRule(allow: true, topics: ["#"])
        let plus = ACLRule(allow: true, topics: ["+/brokers/#"])
        let sys = ACLRule(allow: true, topics: ["$SYS/#"])
        XCTAssertNil(hash.decide(client(), access: .subscribe, topic: "$SYS/brokers"))
        XCTAssertNil(plus.decide(client(), access: .subscribe, topic: "$SYS/brokers/x"))
        XCTAssertEqual(sys.decide(client(), access: .subscribe, topic: "$SYS/brokers/x"), true)
        XCTAssertEqual(hash.decide(client(), access: .publish, topic: "a/b"), true)
        XCTAssertEqual(plus.decide(client(), access: .publish, topic: "x/brokers/y"), true)
    }

    func testFirstMatchingRuleWins() {
        let rules = [
            ACLRule(allow: false, who: .user("mallory")),
            ACLRule(allow: true, who: .user("alice"), access: .publish, topics: ["alice/#"]),
            ACLRule(allow: false, access: .publish, topics: ["alice/#", "private/#"]),
            ACLRule(allow: true, topics: ["#"]),
            ACLRule(allow: false, topics: ["#"]),  // never reached
        ]
        XCTAssertEqual(decide(rules, client(user: "mallory"), .publish, "public/x"), false)
        XCTAssertEqual(decide(rules, client(user: "alice"), .publish, "alice/x"), true)
        XCTAssertEqual(decide(rules, client(user: "bob"), .publish, "alice/x"), false)
        XCTAssertEqual(decide(rules, client(user: "alice"), .publish, "private/x"), false)
        XCTAssertEqual(decide(rules, client(user: "alice"), .subscribe, "alice/x"), true, "the publish rules do not apply")
        XCTAssertEqual(decide(rules, client(user: "bob"), .publish, "public/x"), true)
        XCTAssertNil(decide(Array(rules.prefix(3)), client(user: "bob"), .publish, "public/x"), "no rule: nil")
    }

    // MARK: BuiltinAuth.authorize folds the rules

    func testBuiltinAuthorizeIgnoresWhenNoRuleMatches() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        defer { try? pool.syncShutdownGracefully() }
        let dir = try tempDir()
        let path = dir.appendingPathComponent("acl.toml").path
        try """
        [[rules]]
        permission = "allow"
        user = "alice"
        topics = ["a/#"]

        [[rules]]
        permission = "deny"
        access = "subscribe"
        topics = ["b/#"]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let b = BuiltinAuth(usersPath: nil, aclPath: path, order: 1000, pool: pool)
        XCTAssertEqual(b.rules, ACLRule.emqttdDefaults, "starts with the defaults until reloaded")
        XCTAssertEqual(try b.reloadACL(), 2)
        func ask(_ c: ClientInfo, _ a: ACLAccess, _ t: String) throws -> ProviderDecision {
            try settled(b.authorize(c, access: a, topic: t, on: loop), loop).decision
        }
        XCTAssertEqual(try ask(client(user: "alice"), .publish, "a/1"), .allow(superuser: false))
        XCTAssertEqual(try ask(client(user: "bob"), .subscribe, "b/1"), .deny(reason: "acl rule"))
        XCTAssertEqual(try ask(client(user: "bob"), .publish, "b/1"), .ignore, "nobody decided: acl_nomatch applies")

        // A broken file keeps the old rules.
        try "[[rules]]\npermission = \"maybe\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try b.reloadACL())
        XCTAssertEqual(b.rules.count, 2)

        // No acl_file: the defaults.
        let d = BuiltinAuth(usersPath: nil, aclPath: nil, order: 1000, pool: pool)
        XCTAssertEqual(try d.reloadACL(), ACLRule.emqttdDefaults.count)
    }

    // MARK: the rules file

    private func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func load(_ text: String) throws -> [ACLRule] {
        let path = try tempDir().appendingPathComponent("acl.toml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try BuiltinAuth.loadRules(path)
    }

    private func assertKey(_ text: String, _ key: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(text), file: file, line: line) { e in
            XCTAssertEqual((e as? ConfigError)?.key, key, "\(e)", file: file, line: line)
            XCTAssertTrue("\(e)".contains(key), "the message names the key: \(e)", file: file, line: line)
        }
    }

    func testSavedRulesReadBackTheSame() throws {
        let path = try tempDir().appendingPathComponent("acl.toml").path
        let rules = ACLRule.emqttdDefaults + [
            ACLRule(allow: false, who: .clientId("dev \"7\"\\x"), access: .publish, topics: ["a/\"b\"", "eq #", "%u/+"]),
            ACLRule(allow: true, who: .ipaddr(CIDR("2001:db8::/32")!), access: .subscribe, topics: ["t\nu"]),
        ]
        try BuiltinAuth.saveRules(rules, to: path)
        XCTAssertEqual(try BuiltinAuth.loadRules(path), rules)
        XCTAssertThrowsError(try BuiltinAuth.saveRules([ACLRule(allow: true, who: .and([.user("a"), .clientId("b")]))], to: path))
        XCTAssertEqual(try BuiltinAuth.loadRules(path), rules, "a rule the file cannot hold leaves the file as it was")
    }

    func testEditRulesWritesTheFileFirstAndKeepsTheRulesOnError() throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        defer { try? pool.syncShutdownGracefully() }
        let path = try tempDir().appendingPathComponent("acl.toml").path
        try "[[rules]]\npermission = \"allow\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let b = BuiltinAuth(usersPath: nil, aclPath: path, order: 1000, pool: pool)
        _ = try b.reloadACL()
        let deny = ACLRule(allow: false, who: .user("u"), access: .subscribe, topics: ["x/#"])
        try b.editRules { $0.insert(deny, at: 0) }
        XCTAssertEqual(b.rules, [deny, ACLRule(allow: true)])
        XCTAssertEqual(try BuiltinAuth.loadRules(path), b.rules)
        struct Refused: Error {}
        XCTAssertThrowsError(try b.editRules { $0.removeAll(); throw Refused() })
        XCTAssertEqual(b.rules.count, 2)
        XCTAssertThrowsError(try b.editRules { $0 = [ACLRule(allow: true, who: .and([]))] })
        XCTAssertEqual(b.rules.count, 2, "a rule the file cannot hold changes nothing")
        // emqttd's defaults (no acl_file) are read-only.
        let d = BuiltinAuth(usersPath: nil, aclPath: nil, order: 1000, pool: pool)
        XCTAssertThrowsError(try d.editRules { $0.removeAll() }) { XCTAssertTrue("\($0)".contains("acl_file")) }
    }

    func testParsedRuleFieldsAreChecked() throws {
        XCTAssertEqual(try ACLRule.parse(permission: "deny", user: nil, clientId: nil, ipaddr: "10.0.0.0/8", access: nil, topics: nil, key: "r"),
                       ACLRule(allow: false, who: .ipaddr(CIDR("10.0.0.0/8")!), access: .pubsub, topics: ["#"]))
        for (p, u, c, ip, a, t) in [("yes", nil, nil, nil, nil, nil), ("allow", "a", "b", nil, nil, nil),
                                    ("allow", nil, nil, "1.2.3", nil, nil), ("allow", nil, nil, nil, "read", nil),
                                    ("allow", nil, nil, nil, nil, []), ("allow", nil, nil, nil, nil, [""])] as [(String, String?, String?, String?, String?, [String]?)] {
            XCTAssertThrowsError(try ACLRule.parse(permission: p, user: u, clientId: c, ipaddr: ip, access: a, topics: t, key: "r"))
        }
    }

    func testShippedExampleFileEqualsTheEmbeddedDefaults() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let rules = try BuiltinAuth.loadRules(repo.appendingPathComponent("etc/acl.toml").path)
        XCTAssertEqual(rules, ACLRule.emqttdDefaults)
    }

    func testParseEveryField() throws {
        let rules = try load("""
        [[rules]]
        permission = "allow"
        user = "dashboard"
        access = "subscribe"
        topics = ["$SYS/#"]

        [[rules]]
        permission = "deny"
        clientid = "dev-%c"
        access = "publish"
        topics = ["eq #", "x/%u"]

        [[rules]]
        permission = "allow"
        ipaddr = "10.0.0.0/8"

        [[rules]]
        permission = "deny"
        """)
        XCTAssertEqual(rules, [
            ACLRule(allow: true, who: .user("dashboard"), access: .subscribe, topics: ["$SYS/#"]),
            ACLRule(allow: false, who: .clientId("dev-%c"), access: .publish, topics: ["eq #", "x/%u"]),
            ACLRule(allow: true, who: .ipaddr(CIDR("10.0.0.0/8")!), access: .pubsub, topics: ["#"]),
            ACLRule(allow: false, who: .all, access: .pubsub, topics: ["#"]),
        ])
        XCTAssertEqual(try load("# no rules\n"), [])
    }

    func testParseErrorsNameTheKey() {
        assertKey("[[rules]]\naccess = \"publish\"\n", "rules[1].permission")
        assertKey("[[rules]]\npermission = \"allow\"\n\n[[rules]]\npermission = \"Allow\"\n", "rules[2].permission")
        assertKey("[[rules]]\npermission = \"allow\"\naccess = \"read\"\n", "rules[1].access")
        assertKey("[[rules]]\npermission = \"deny\"\nipaddr = \"10.0.0.0/40\"\n", "rules[1].ipaddr")
        assertKey("[[rules]]\npermission = \"deny\"\nipaddr = \"example.com\"\n", "rules[1].ipaddr")
        assertKey("rules = [1, 2]\n", "rules[1]")
    }

    func testTOMLSyntaxErrorNamesTheFileAndLine() throws {
        let path = try tempDir().appendingPathComponent("broken.toml").path
        try "[[rules]]\npermission = \"allow\nuser = \"x\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BuiltinAuth.loadRules(path)) { e in
            let ce = e as? ConfigError
            XCTAssertEqual(ce?.key, path)
            XCTAssertNotNil(ce?.line)
        }
    }
}
