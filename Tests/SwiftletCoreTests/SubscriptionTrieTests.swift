import SwiftletRouting
import MQTTCodec
import XCTest
@testable import SwiftletCore

final class SubscriptionTrieTests: XCTestCase {
    private var h: Harness!

    override func setUp() {
        super.setUp()
        h = makeHarness()
    }

    private func entry(_ s: Session, qos: QoS = .atMostOnce) -> SubscriberEntry {
        SubscriberEntry(session: s, options: SubscriptionOptions(qos: qos))
    }

    private func filter(_ raw: String) -> ParsedFilter { ParsedFilter.parse(raw)! }

    /// Client ids of the plain subscriptions matching `topic` (one per matching filter) and
    /// the number of shared groups matched.
    private func match(_ trie: SubscriptionTrie, _ topic: String) -> (ids: [String], groups: Int) {
        var ids: [String] = []
        var groups = 0
        trie.match(topic: topic, visit: { ids.append($0.session.clientId) }, visitShared: { _ in groups += 1 })
        return (ids.sorted(), groups)
    }

    /// A repeated topic is answered from the match cache; every change to the trie shows at
    /// the next match (subscribe, replace with other options, unsubscribe, shared groups).
    func testRepeatedTopicSeesEveryChange() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b")
        let topic = "sensors/building-7/floor-3/temperature"
        XCTAssertEqual(match(trie, topic).ids, [])
        XCTAssertEqual(match(trie, topic).ids, [])
        trie.insert(filter("sensors/#"), entry: entry(a))
        XCTAssertEqual(match(trie, topic).ids, ["a"])
        XCTAssertEqual(match(trie, topic).ids, ["a"])
        trie.insert(filter("sensors/+/floor-3/+"), entry: entry(b))
        XCTAssertEqual(match(trie, topic).ids, ["a", "b"])
        trie.insert(filter("sensors/#"), entry: entry(a, qos: .atLeastOnce))
        var qos: [QoS] = []
        trie.match(topic: topic, visit: { if $0.session.clientId == "a" { qos.append($0.options.qos) } }, visitShared: { _ in })
        XCTAssertEqual(qos, [.atLeastOnce])
        trie.remove(filter("sensors/#"), session: a)
        XCTAssertEqual(match(trie, topic).ids, ["b"])
        trie.insert(filter("$share/g/sensors/#"), entry: entry(a))
        XCTAssertEqual(match(trie, topic).groups, 1)
        trie.remove(filter("$share/g/sensors/#"), session: a)
        trie.remove(filter("sensors/+/floor-3/+"), session: b)
        XCTAssertEqual(match(trie, topic).ids, [])
        XCTAssertEqual(match(trie, topic).groups, 0)
    }

    func testInsertCountsEachNewSubscription() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b")
        XCTAssertFalse(trie.insert(filter("x/y"), entry: entry(a)))
        XCTAssertFalse(trie.insert(filter("x/y"), entry: entry(b)))
        XCTAssertFalse(trie.insert(filter("x/+"), entry: entry(a)))
        XCTAssertEqual(trie.count, 3)
    }

    func testInsertingTheSameFilterAgainReplacesWithoutCounting() {
        let trie = SubscriptionTrie()
        let a = h.session("a")
        trie.insert(filter("x/y"), entry: entry(a, qos: .atMostOnce))
        XCTAssertTrue(trie.insert(filter("x/y"), entry: entry(a, qos: .exactlyOnce)))
        XCTAssertEqual(trie.count, 1)
        var seen: [QoS] = []
        trie.match(topic: "x/y", visit: { seen.append($0.options.qos) }, visitShared: { _ in })
        XCTAssertEqual(seen, [.exactlyOnce])
    }

    func testRemoveReturnsWhetherItExisted() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b")
        trie.insert(filter("x/y"), entry: entry(a))
        XCTAssertFalse(trie.remove(filter("x/y"), session: b))
        XCTAssertFalse(trie.remove(filter("x/z"), session: a))
        XCTAssertFalse(trie.remove(filter("x/y/z"), session: a))
        XCTAssertTrue(trie.remove(filter("x/y"), session: a))
        XCTAssertFalse(trie.remove(filter("x/y"), session: a))
        XCTAssertEqual(trie.count, 0)
        XCTAssertEqual(match(trie, "x/y").ids, [])
    }

    func testRemovePrunesEmptyNodes() {
        let trie = SubscriptionTrie()
        let a = h.session("a")
        trie.insert(filter("a/b/c/d"), entry: entry(a))
        trie.insert(filter("a/b"), entry: entry(a))
        trie.remove(filter("a/b/c/d"), session: a)
        // "a/b" still holds a subscriber: only "c/d" below it goes.
        XCTAssertNotNil(trie.root.children["a"]?.children["b"])
        XCTAssertTrue(trie.root.children["a"]!.children["b"]!.children.isEmpty)
        trie.remove(filter("a/b"), session: a)
        XCTAssertTrue(trie.root.children.isEmpty)
        XCTAssertEqual(trie.count, 0)
    }

    func testRemoveKeepsNodesOtherFiltersNeed() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b")
        trie.insert(filter("a/b/c"), entry: entry(a))
        trie.insert(filter("a/b/d"), entry: entry(b))
        trie.remove(filter("a/b/c"), session: a)
        XCTAssertEqual(match(trie, "a/b/d").ids, ["b"])
        XCTAssertEqual(trie.root.children["a"]?.children["b"]?.children.count, 1)
    }

    func testSharedSubscriptionsArePrunedWithTheLastMember() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b")
        trie.insert(filter("$share/g/s/t"), entry: entry(a))
        trie.insert(filter("$share/g/s/t"), entry: entry(b))
        XCTAssertTrue(trie.insert(filter("$share/g/s/t"), entry: entry(b)))
        XCTAssertEqual(trie.count, 2)
        XCTAssertEqual(match(trie, "s/t").groups, 1)
        XCTAssertTrue(trie.remove(filter("$share/g/s/t"), session: a))
        XCTAssertEqual(match(trie, "s/t").groups, 1)
        XCTAssertTrue(trie.remove(filter("$share/g/s/t"), session: b))
        XCTAssertEqual(match(trie, "s/t").groups, 0)
        XCTAssertTrue(trie.root.children.isEmpty)
        XCTAssertEqual(trie.count, 0)
    }

    func testSharedAndPlainSubscriptionsOnOneFilterAreSeparate() {
        let trie = SubscriptionTrie()
        let a = h.session("a")
        trie.insert(filter("$share/g/s"), entry: entry(a))
        trie.insert(filter("s"), entry: entry(a))
        XCTAssertEqual(trie.count, 2)
        trie.remove(filter("s"), session: a)
        let m = match(trie, "s")
        XCTAssertEqual(m.ids, [])
        XCTAssertEqual(m.groups, 1)
    }

    func testOverlappingFiltersEachMatch() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b")
        for f in ["a/b", "a/+", "a/#", "#", "+/b", "a/b/#"] { trie.insert(filter(f), entry: entry(a)) }
        trie.insert(filter("a/c"), entry: entry(b))
        XCTAssertEqual(match(trie, "a/b").ids, Array(repeating: "a", count: 6))
        XCTAssertEqual(match(trie, "a/c").ids, ["a", "a", "a", "b"])
        XCTAssertEqual(match(trie, "a").ids, ["a", "a"]) // "a/#" and "#"
    }

    func testTrieHashMatchesParentLevel() {
        let trie = SubscriptionTrie()
        let a = h.session("a")
        trie.insert(filter("a/#"), entry: entry(a))
        XCTAssertEqual(match(trie, "a").ids, ["a"])
        XCTAssertEqual(match(trie, "a/b/c").ids, ["a"])
        XCTAssertEqual(match(trie, "b").ids, [])
    }

    func testTrieWildcardsSkipDollarTopics() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b"), c = h.session("c")
        trie.insert(filter("#"), entry: entry(a))
        trie.insert(filter("+/x"), entry: entry(b))
        trie.insert(filter("$SYS/#"), entry: entry(c))
        trie.insert(filter("$share/g/#"), entry: entry(a))
        let m = match(trie, "$SYS/x")
        XCTAssertEqual(m.ids, ["c"])
        XCTAssertEqual(m.groups, 0)
        XCTAssertEqual(match(trie, "y/x").ids, ["a", "b"])
    }

    func testTrieEmptyLevels() {
        let trie = SubscriptionTrie()
        let a = h.session("a")
        trie.insert(filter("/+"), entry: entry(a))
        XCTAssertEqual(match(trie, "/x").ids, ["a"])
        XCTAssertEqual(match(trie, "x").ids, [])
    }

    func testTrieAgreesWithTopicMatch() {
        let filters = ["a/b", "a/+", "a/#", "#", "+", "+/+", "+/b/#", "$SYS/#", "a/b/c", "/a", "+/a"]
        let topics = ["a", "a/b", "a/b/c", "b/b", "b/b/c", "$SYS/a", "/a", "a/", "x"]
        let trie = SubscriptionTrie()
        var sessions: [String: Session] = [:]
        for f in filters {
            let s = h.session(f)
            sessions[f] = s
            trie.insert(filter(f), entry: entry(s))
        }
        for t in topics {
            let expected = filters.filter { TopicMatch.matches(filter: $0, topic: t) }.sorted()
            XCTAssertEqual(match(trie, t).ids, expected, "topic \(t)")
        }
    }

    /// Filters, levels, share names and the match cache compare bytes: a filter and a topic
    /// that differ only in Unicode normalization do not match [MQTT-4.7.3-4].
    func testCanonicallyEqualLevelsAreDifferentLevels() {
        let trie = SubscriptionTrie()
        let a = h.session("a"), b = h.session("b"), c = h.session("c")
        let pre = "t/caf\u{E9}", dec = "t/cafe\u{301}"
        XCTAssertFalse(trie.insert(filter(pre), entry: entry(a)))
        XCTAssertFalse(trie.insert(filter(dec), entry: entry(b)), "a second filter, not a replacement")
        XCTAssertEqual(trie.count, 2)
        // Twice each: the second answer comes from the match cache.
        for _ in 0..<2 {
            XCTAssertEqual(match(trie, pre).ids, ["a"])
            XCTAssertEqual(match(trie, dec).ids, ["b"])
        }
        trie.insert(filter("$share/caf\u{E9}/g/#"), entry: entry(c))
        trie.insert(filter("$share/cafe\u{301}/g/#"), entry: entry(c))
        XCTAssertEqual(match(trie, "g/x").groups, 2, "two share names, two groups")
        XCTAssertTrue(trie.remove(filter(dec), session: b))
        XCTAssertEqual(match(trie, pre).ids, ["a"])
        XCTAssertEqual(match(trie, dec).ids, [])
    }
}
