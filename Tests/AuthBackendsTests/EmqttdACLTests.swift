import AuthBackends
import XCTest

private func client(_ id: String = "dev-1", user: String? = "alice", ip: String = "10.1.2.3") -> EmqttdACL.Client {
    EmqttdACL.Client(clientId: id, username: user, ipAddress: ip)
}

final class EmqttdACLTests: XCTestCase {
    /// The seed's sample rows of mqtt_acl, in id order.
    func seedRules() throws -> [EmqttdACL.Rule] {
        let rows: [(Int, String?, String?, String?, Int, String)] = [
            (1, nil, "$all", nil, 2, "#"),
            (0, nil, "$all", nil, 1, "$SYS/#"),
            (0, nil, "$all", nil, 1, "eq #"),
            (1, "127.0.0.1", nil, nil, 2, "$SYS/#"),
            (1, "127.0.0.1", nil, nil, 2, "#"),
            (1, nil, "dashboard", nil, 1, "$SYS/#"),
        ]
        return try rows.map { try EmqttdACL.rule(allow: $0.0, ipaddr: $0.1, username: $0.2, clientId: $0.3, access: $0.4, topic: $0.5) }
    }

    func testSeedRows() throws {
        let rules = try seedRules()
        XCTAssertEqual(rules[0], EmqttdACL.Rule(allow: true, who: .all, access: .publish, topics: ["#"]))
        XCTAssertEqual(rules[3].who, .ipaddr(CIDR("127.0.0.1")!))
        XCTAssertEqual(rules[5].who, .user("dashboard"))
        let c = client()
        XCTAssertEqual(EmqttdACL.decide(rules, c, .publish, topic: "a/b"), true, "row 1")
        XCTAssertEqual(EmqttdACL.decide(rules, c, .subscribe, topic: "$SYS/brokers"), false, "row 2")
        XCTAssertEqual(EmqttdACL.decide(rules, c, .subscribe, topic: "#"), false, "row 3: eq #")
        XCTAssertNil(EmqttdACL.decide(rules, c, .subscribe, topic: "a/#"), "no row: acl_nomatch")
        XCTAssertEqual(EmqttdACL.decide(rules, client(user: "dashboard"), .subscribe, topic: "$SYS/x"), false,
                       "row 2 comes first: the dashboard row is never reached")
        XCTAssertEqual(EmqttdACL.decide(Array(rules[3...]), client(ip: "127.0.0.1"), .publish, topic: "$SYS/x"), true)
        XCTAssertEqual(EmqttdACL.decide(Array(rules[5...]), client(user: "dashboard"), .subscribe, topic: "$SYS/x"), true)
        XCTAssertNil(EmqttdACL.decide(Array(rules[5...]), client(user: "alice"), .subscribe, topic: "$SYS/x"))
    }

    func testRowsWithSeveralWhoColumnsNeedAll() throws {
        let r = try EmqttdACL.rule(allow: 1, ipaddr: "10.0.0.0/8", username: "alice", clientId: "", access: 3, topic: "t")
        XCTAssertEqual(r.who, .and([.ipaddr(CIDR("10.0.0.0/8")!), .user("alice")]))
        XCTAssertEqual(r.decide(client(), .publish, topic: "t"), true)
        XCTAssertNil(r.decide(client(ip: "11.0.0.1"), .publish, topic: "t"))
        XCTAssertNil(r.decide(client(user: "bob"), .publish, topic: "t"))
        let cid = try EmqttdACL.rule(allow: 0, ipaddr: nil, username: nil, clientId: "dev-1", access: 1, topic: "t")
        XCTAssertEqual(cid.decide(client("dev-1"), .subscribe, topic: "t"), false)
        XCTAssertNil(cid.decide(client("dev-2"), .subscribe, topic: "t"))
    }

    func testBadRows() {
        XCTAssertThrowsError(try EmqttdACL.rule(allow: 1, ipaddr: nil, username: nil, clientId: nil, access: 1, topic: "t"))
        XCTAssertThrowsError(try EmqttdACL.rule(allow: 2, ipaddr: nil, username: "$all", clientId: nil, access: 1, topic: "t"))
        XCTAssertThrowsError(try EmqttdACL.rule(allow: nil, ipaddr: nil, username: "$all", clientId: nil, access: 1, topic: "t"))
        XCTAssertThrowsError(try EmqttdACL.rule(allow: 1, ipaddr: nil, username: "$all", clientId: nil, access: 4, topic: "t"))
        XCTAssertThrowsError(try EmqttdACL.rule(allow: 1, ipaddr: nil, username: "$all", clientId: nil, access: 1, topic: ""))
        XCTAssertThrowsError(try EmqttdACL.rule(allow: 1, ipaddr: "host", username: nil, clientId: nil, access: 1, topic: "t"))
    }

    func testAccessCodes() {
        XCTAssertEqual(EmqttdACL.Access(code: 1), .subscribe)
        XCTAssertEqual(EmqttdACL.Access(code: 2), .publish)
        XCTAssertEqual(EmqttdACL.Access(code: 3), .pubsub)
        XCTAssertNil(EmqttdACL.Access(code: 0))
        XCTAssertTrue(EmqttdACL.Access.pubsub.covers(.subscribe))
        XCTAssertFalse(EmqttdACL.Access.publish.covers(.subscribe))
    }

    /// A `/` before a combining mark is a level separator for the rules as for routing
    /// (Topic.levels): otherwise `secret/\u{301}x` would be one level to a rule and two to
    /// the subscription trie, and `deny ... secret/#` would not stop what `secret/#`
    /// subscribers receive.
    func testRulesCutLevelsWhereRoutingDoes() {
        let topic = "secret/\u{301}x"
        XCTAssertTrue(EmqttdACL.plainMatches("secret/#", topic: topic))
        XCTAssertTrue(EmqttdACL.plainMatches("secret/+", topic: topic))
        let c = client(user: "secret")
        XCTAssertTrue(EmqttdACL.matches("%u/+", topic: topic, client: c, isFilter: false))
        XCTAssertTrue(EmqttdACL.matches("%u/#", topic: topic, client: c, isFilter: false))
        XCTAssertFalse(EmqttdACL.matches("%u", topic: topic, client: c, isFilter: false))
        let deny = EmqttdACL.Rule(allow: false, access: .publish, topics: ["%u/#"])
        XCTAssertEqual(deny.decide(c, .publish, topic: topic), false)
    }

    /// Names and topics compare by their bytes, as routing does [MQTT-4.7.3-4]: a rule for
    /// one spelling does not apply to a canonically equal other one.
    func testRulesCompareBytes() {
        let pre = "caf\u{E9}", dec = "cafe\u{301}"
        let eq = EmqttdACL.Rule(allow: true, access: .publish, topics: ["eq t/\(pre)"])
        XCTAssertEqual(eq.decide(client(), .publish, topic: "t/\(pre)"), true)
        XCTAssertNil(eq.decide(client(), .publish, topic: "t/\(dec)"))
        let level = EmqttdACL.Rule(allow: true, access: .publish, topics: ["t/\(pre)/+"])
        XCTAssertEqual(level.decide(client(), .publish, topic: "t/\(pre)/x"), true)
        XCTAssertNil(level.decide(client(), .publish, topic: "t/\(dec)/x"))
        let own = EmqttdACL.Rule(allow: true, access: .publish, topics: ["u/%u/x"])
        XCTAssertEqual(own.decide(client(user: pre), .publish, topic: "u/\(pre)/x"), true)
        XCTAssertNil(own.decide(client(user: pre), .publish, topic: "u/\(dec)/x"))
        let user = EmqttdACL.Rule(allow: true, who: .user(pre), access: .publish, topics: ["#"])
        XCTAssertEqual(user.decide(client(user: pre), .publish, topic: "a"), true)
        XCTAssertNil(user.decide(client(user: dec), .publish, topic: "a"))
        let id = EmqttdACL.Rule(allow: true, who: .clientId(pre), access: .publish, topics: ["#"])
        XCTAssertEqual(id.decide(client(pre), .publish, topic: "a"), true)
        XCTAssertNil(id.decide(client(dec), .publish, topic: "a"))
    }

    func testEqIsLiteral() {
        let r = EmqttdACL.Rule(allow: false, access: .subscribe, topics: ["eq #"])
        XCTAssertEqual(r.decide(client(), .subscribe, topic: "#"), false)
        XCTAssertNil(r.decide(client(), .subscribe, topic: "a/#"))
        XCTAssertNil(r.decide(client(), .subscribe, topic: "+"))
    }

    /// Issue 11: the same regression as the built-in ACL's, part of every backend's suite.
    func testSubstitutedNamesNeverWidenARule() {
        let own = EmqttdACL.Rule(allow: true, topics: ["client/%c"])
        XCTAssertNil(own.decide(client("#"), .subscribe, topic: "client/#"))
        XCTAssertNil(own.decide(client("+"), .subscribe, topic: "client/+"))
        XCTAssertNil(own.decide(client("#"), .publish, topic: "client/x"))
        XCTAssertEqual(own.decide(client("dev-1"), .subscribe, topic: "client/dev-1"), true)
        let nope = EmqttdACL.Rule(allow: true, topics: ["nope/%u"])
        XCTAssertNil(nope.decide(client(user: "+"), .publish, topic: "nope/x"))
        XCTAssertNil(nope.decide(client(user: "+"), .subscribe, topic: "nope/+"))
        XCTAssertEqual(nope.decide(client(user: "+"), .publish, topic: "nope/+"), true)
        XCTAssertNil(nope.decide(client(user: "#"), .subscribe, topic: "nope/#"))
        XCTAssertEqual(nope.decide(client(user: "a/b"), .publish, topic: "nope/a/b"), true)
        XCTAssertNil(nope.decide(client(user: "a/b"), .publish, topic: "nope/a"))
        XCTAssertNil(nope.decide(client(user: nil), .publish, topic: "nope/%u"))
        XCTAssertNil(nope.decide(client(user: ""), .publish, topic: "nope/"))
        let deny = EmqttdACL.Rule(allow: false, topics: ["nope/%u"])
        XCTAssertNil(deny.decide(client(user: "+"), .publish, topic: "nope/x"))
        XCTAssertEqual(deny.decide(client(user: "+"), .publish, topic: "nope/+"), false)
        let both = EmqttdACL.Rule(allow: true, topics: ["%u/%c"])
        XCTAssertNil(both.decide(client("dev", user: "%c"), .publish, topic: "dev/dev"), "one pass")
    }

    func testDollarTopicsAndWildcards() {
        XCTAssertFalse(EmqttdACL.matches("#", topic: "$SYS/x", client: client(), isFilter: false))
        XCTAssertFalse(EmqttdACL.matches("+/x", topic: "$SYS/x", client: client(), isFilter: false))
        XCTAssertTrue(EmqttdACL.matches("$SYS/#", topic: "$SYS/x", client: client(), isFilter: false))
        XCTAssertTrue(EmqttdACL.matches("a/+/c", topic: "a/b/c", client: client(), isFilter: false))
        XCTAssertTrue(EmqttdACL.matches("a/#", topic: "a", client: client(), isFilter: false))
        XCTAssertFalse(EmqttdACL.matches("a/+", topic: "a/b/c", client: client(), isFilter: false))
    }

    /// The byte-wise matcher against a split-based reference, over every pair of a set of
    /// rule topics and topics with empty levels, `$`, wildcards and multi-byte characters.
    func testPlainMatcherAgreesWithSplitting() {
        func reference(_ rule: String, _ topic: String) -> Bool {
            let p = rule.split(separator: "/", omittingEmptySubsequences: false)
            let t = topic.split(separator: "/", omittingEmptySubsequences: false)
            if topic.hasPrefix("$"), p[0] == "+" || p[0] == "#" { return false }
            var i = 0
            while i < p.count {
                if p[i] == "#" { return true }
                if i >= t.count { return false }
                if p[i] != "+" && p[i] != t[i] { return false }
                i += 1
            }
            return i == t.count
        }
        let rules = ["#", "+", "+/#", "a", "a/#", "a/+", "a/+/c", "/", "/+", "+/", "a//b", "$SYS/#", "$SYS", "+x", "#x/#",
                     "é/+", "a/b/c/#", "", "//", "+/+/+"]
        let topics = ["a", "a/b", "a/b/c", "a/b/c/d", "", "/", "//", "a/", "/a", "a//b", "$SYS/x", "$SYS", "+x/y", "#x/y",
                      "é/ü", "b", "a/+", "a/#", "+", "#"]
        for r in rules {
            for t in topics {
                XCTAssertEqual(EmqttdACL.plainMatches(r, topic: t), reference(r, t), "\(r) vs \(t)")
                XCTAssertEqual(EmqttdACL.matches(r, topic: t, client: client(), isFilter: true), reference(r, t), "\(r) vs \(t)")
            }
        }
    }

    func testDefaultsAndCIDR() {
        XCTAssertEqual(EmqttdACL.Rule.emqttdDefaults.count, 5)
        XCTAssertTrue(CIDR("10.0.0.0/8")!.contains("::ffff:10.1.1.1"))
        XCTAssertNil(CIDR("10.0.0.0/33"))
        XCTAssertEqual(EmqttdACL.NoMatch(rawValue: "ignore"), .ignore)
    }
}
