import SwiftletRouting
import MQTTCodec
import XCTest
@testable import SwiftletCore

/// The trie node's subscriber set (one entry inline, a dictionary from the second), and the
/// trie built on it checked against a plain model of the subscriptions.
final class SubscriberSetTests: XCTestCase {
    private var h: Harness!

    override func setUp() {
        super.setUp()
        h = makeHarness()
    }

    private func entry(_ s: Session, _ qos: QoS = .atMostOnce, noLocal: Bool = false, id: Int? = nil) -> SubscriberEntry {
        SubscriberEntry(session: s, options: SubscriptionOptions(qos: qos, noLocal: noLocal, subscriptionIdentifier: id))
    }

    private func contents(_ set: SubscriberSet) -> [String: SubscriptionOptions] {
        var out: [String: SubscriptionOptions] = [:]
        set.forEach { out[$0.session.clientId] = $0.options }
        return out
    }

    func testOneEntryStaysInlineAndTheSecondMakesADictionary() {
        let a = h.session("a"), b = h.session("b")
        var set = SubscriberSet()
        XCTAssertTrue(set.isEmpty)
        XCTAssertFalse(set.update(entry(a)))
        XCTAssertEqual(set.count, 1)
        XCTAssertFalse(set.isDictionary)
        // Replacing the one entry keeps it inline, with the new options.
        XCTAssertTrue(set.update(entry(a, .atLeastOnce, noLocal: true, id: 7)))
        XCTAssertFalse(set.isDictionary)
        XCTAssertEqual(contents(set), ["a": SubscriptionOptions(qos: .atLeastOnce, noLocal: true, subscriptionIdentifier: 7)])
        XCTAssertFalse(set.update(entry(b)))
        XCTAssertTrue(set.isDictionary)
        XCTAssertEqual(set.count, 2)
        XCTAssertEqual(set[ObjectIdentifier(a)]?.options.subscriptionIdentifier, 7)
        XCTAssertEqual(set[ObjectIdentifier(b)]?.options.qos, .atMostOnce)
        XCTAssertTrue(set.update(entry(b, .exactlyOnce)))
        XCTAssertEqual(set.count, 2)
        XCTAssertEqual(set[ObjectIdentifier(b)]?.options.qos, .exactlyOnce)
    }

    func testRemovingBackToOneGoesInlineAgain() {
        let a = h.session("a"), b = h.session("b"), c = h.session("c")
        var set = SubscriberSet()
        set.update(entry(a)); set.update(entry(b)); set.update(entry(c, .atLeastOnce))
        XCTAssertFalse(set.remove(ObjectIdentifier(h.session("other"))))
        XCTAssertTrue(set.remove(ObjectIdentifier(a)))
        XCTAssertTrue(set.isDictionary)
        XCTAssertTrue(set.remove(ObjectIdentifier(b)))
        XCTAssertFalse(set.isDictionary)
        XCTAssertEqual(contents(set), ["c": SubscriptionOptions(qos: .atLeastOnce)])
        XCTAssertFalse(set.remove(ObjectIdentifier(b)))
        XCTAssertNil(set[ObjectIdentifier(a)])
        XCTAssertTrue(set.remove(ObjectIdentifier(c)))
        XCTAssertTrue(set.isEmpty)
        XCTAssertFalse(set.remove(ObjectIdentifier(c)))
        XCTAssertEqual(set.count, 0)
    }

    func testACopyIsIndependent() {
        let a = h.session("a"), b = h.session("b"), c = h.session("c")
        var set = SubscriberSet()
        set.update(entry(a)); set.update(entry(b))
        var copy = set
        copy.update(entry(c))
        copy.remove(ObjectIdentifier(a))
        XCTAssertEqual(Set(contents(set).keys), ["a", "b"])
        XCTAssertEqual(Set(contents(copy).keys), ["b", "c"])
    }

    /// Random subscribes, resubscribes with other options and unsubscribes of plain and shared
    /// filters (with `$` topics, no-local and subscription identifiers among the options); after
    /// every step the trie's matches equal those of a plain list of the subscriptions matched
    /// with `TopicMatch.matches`, options included, and its count equals the list's.
    func testTrieAgreesWithAModelUnderRandomChanges() {
        let filters = ["a", "a/b", "a/+", "a/#", "#", "+", "+/+", "+/b/#", "a/b/c", "/a", "+/a", "$SYS/#",
                       "$SYS/+/x", "$share/g/a/b", "$share/g/a/#", "$share/h/a/b", "$queue/+/b", "$share/g/#"]
        let topics = ["a", "a/b", "a/b/c", "b/b", "b/b/c", "$SYS/a", "$SYS/a/x", "/a", "a/", "x", ""]
        let sessions = (0..<5).map { h.session("c\($0)") }
        var rng = SystemRandomNumberGenerator()
        let trie = SubscriptionTrie()
        // (session index, raw filter) -> options
        var model: [String: (Int, ParsedFilter, SubscriptionOptions)] = [:]
        for step in 0..<2_000 {
            let si = Int.random(in: 0..<sessions.count, using: &rng)
            let f = ParsedFilter.parse(filters.randomElement(using: &rng)!)!
            let key = "\(si) \(f.raw)"
            if Bool.random(using: &rng) {
                let o = SubscriptionOptions(qos: QoS(rawValue: UInt8.random(in: 0...2, using: &rng))!,
                                            noLocal: Bool.random(using: &rng),
                                            subscriptionIdentifier: Bool.random(using: &rng) ? step + 1 : nil)
                let replaced = trie.insert(f, entry: SubscriberEntry(session: sessions[si], options: o))
                XCTAssertEqual(replaced, model[key] != nil, "insert \(key)")
                model[key] = (si, f, o)
            } else {
                let removed = trie.remove(f, session: sessions[si])
                XCTAssertEqual(removed, model[key] != nil, "remove \(key)")
                model[key] = nil
            }
            XCTAssertEqual(trie.count, model.count)
            let t = topics.randomElement(using: &rng)!
            var plain: [String] = [], groups: [String] = []
            trie.match(topic: t, visit: { e in
                plain.append("\(e.session.clientId) \(e.options.qos) \(e.options.noLocal) \(e.options.subscriptionIdentifier ?? 0)")
            }, visitShared: { g in
                groups.append(g.members.map { "\($0.session.clientId) \($0.options.qos)" }.sorted().joined(separator: ","))
            })
            var expectedPlain: [String] = []
            var expectedGroups: [String: [String]] = [:]
            for (si, f, o) in model.values where TopicMatch.matches(filter: f.filter, topic: t) {
                let who = sessions[si].clientId
                if let g = f.group {
                    expectedGroups["\(g) \(f.filter)", default: []].append("\(who) \(o.qos)")
                } else {
                    expectedPlain.append("\(who) \(o.qos) \(o.noLocal) \(o.subscriptionIdentifier ?? 0)")
                }
            }
            XCTAssertEqual(plain.sorted(), expectedPlain.sorted(), "step \(step) topic \(t)")
            XCTAssertEqual(groups.sorted(), expectedGroups.values.map { $0.sorted().joined(separator: ",") }.sorted(),
                           "step \(step) topic \(t)")
        }
        // Everything removed: the trie prunes back to an empty root.
        for (_, (si, f, _)) in model { XCTAssertTrue(trie.remove(f, session: sessions[si])) }
        XCTAssertEqual(trie.count, 0)
        XCTAssertTrue(trie.root.children.isEmpty)
    }
}
