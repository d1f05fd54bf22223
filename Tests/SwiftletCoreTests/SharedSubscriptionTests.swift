import SwiftletRouting
import SwiftletConfig
import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

/// Routing through `LoopContext.route` with sessions that have no connection: every delivery
/// a session gets lands in its outbound queue, so the queue length counts deliveries.
final class SharedSubscriptionTests: XCTestCase {
    private func subscribe(_ h: Harness, _ s: Session, _ raw: String, qos: QoS = .atLeastOnce, subId: Int? = nil) {
        let parsed = ParsedFilter.parse(raw)!
        let entry = SubscriberEntry(session: s, options: SubscriptionOptions(qos: qos, subscriptionIdentifier: subId))
        h.ctx.trie.insert(parsed, entry: entry)
    }

    private func route(_ h: Harness, topic: String = "t", count: Int, qos: QoS = .atLeastOnce) -> [Int] {
        (0..<count).map { _ in
            h.ctx.route(Message(topic: topic, payload: payload("m"), qos: qos, retain: false, now: h.loop.now))
        }
    }

    private func received(_ s: Session) -> Int { s.outbound.queue.count }

    private func group(_ h: Harness, _ name: String, _ ids: [String], filter: String = "t") -> [Session] {
        ids.map { id in
            let s = h.session(id)
            subscribe(h, s, "$share/\(name)/\(filter)")
            return s
        }
    }

    func testEachMessageGoesToExactlyOneGroupMember() {
        for strategy in [SharedStrategy.random, .round_robin, .sticky, .hash_clientid, .hash_topic] {
            let h = makeHarness { $0.mqtt.sharedStrategy = strategy }
            let members = group(h, "g", ["a", "b", "c"])
            let addressed = route(h, count: 30)
            XCTAssertEqual(addressed, Array(repeating: 1, count: 30), "\(strategy)")
            XCTAssertEqual(members.map(received).reduce(0, +), 30, "\(strategy)")
        }
    }

    func testRoundRobinSpreadsEvenly() {
        let h = makeHarness { $0.mqtt.sharedStrategy = .round_robin }
        let members = group(h, "g", ["a", "b", "c"])
        _ = route(h, count: 30)
        XCTAssertEqual(members.map(received), [10, 10, 10])
    }

    func testRoundRobinVisitsMembersInTurn() {
        let h = makeHarness { $0.mqtt.sharedStrategy = .round_robin }
        let members = group(h, "g", ["a", "b", "c"])
        var order: [String] = []
        for _ in 0..<6 {
            let before = members.map(received)
            _ = route(h, count: 1)
            let after = members.map(received)
            let i = after.indices.first { after[$0] != before[$0] }!
            order.append(members[i].clientId)
        }
        XCTAssertEqual(order, ["a", "b", "c", "a", "b", "c"])
    }

    func testQueueGroupIsShared() {
        let h = makeHarness { $0.mqtt.sharedStrategy = .round_robin }
        let a = h.session("a"), b = h.session("b")
        subscribe(h, a, "$queue/t")
        subscribe(h, b, "$queue/t")
        XCTAssertEqual(route(h, count: 4), [1, 1, 1, 1])
        XCTAssertEqual([received(a), received(b)], [2, 2])
    }

    func testEveryGroupOnAFilterGetsEveryMessage() {
        let h = makeHarness { $0.mqtt.sharedStrategy = .random }
        let g1 = group(h, "g1", ["a1", "a2"])
        let g2 = group(h, "g2", ["b1", "b2", "b3"])
        XCTAssertEqual(route(h, count: 20), Array(repeating: 2, count: 20))
        XCTAssertEqual(g1.map(received).reduce(0, +), 20)
        XCTAssertEqual(g2.map(received).reduce(0, +), 20)
    }

    func testGroupsWithDifferentFiltersMatchingOneTopicEachGetTheMessage() {
        let h = makeHarness()
        let g1 = group(h, "g", ["a1", "a2"], filter: "t/+")
        let g2 = group(h, "g", ["b1", "b2"], filter: "t/#")
        _ = route(h, topic: "t/x", count: 10)
        XCTAssertEqual(g1.map(received).reduce(0, +), 10)
        XCTAssertEqual(g2.map(received).reduce(0, +), 10)
    }

    func testPlainSubscriberBesideAGroupGetsEveryMessage() {
        let h = makeHarness()
        let members = group(h, "g", ["a", "b", "c"])
        let plain = h.session("plain")
        subscribe(h, plain, "t")
        XCTAssertEqual(route(h, count: 12), Array(repeating: 2, count: 12))
        XCTAssertEqual(received(plain), 12)
        XCTAssertEqual(members.map(received).reduce(0, +), 12)
    }

    func testGroupMemberAlsoSubscribedPlainlyGetsBothDeliveries() {
        let h = makeHarness()
        let a = h.session("a")
        subscribe(h, a, "$share/g/t")
        subscribe(h, a, "t")
        XCTAssertEqual(route(h, count: 1), [2])
        XCTAssertEqual(received(a), 2)
    }

    func testOfflineMembersAreSkippedWhenOneIsOnline() {
        for strategy in [SharedStrategy.random, .round_robin, .sticky, .hash_clientid, .hash_topic] {
            let h = makeHarness { $0.mqtt.sharedStrategy = strategy }
            let members = group(h, "g", ["a", "b", "c"])
            members[1].online.store(true, ordering: .relaxed)
            _ = route(h, count: 12)
            XCTAssertEqual(members.map(received), [0, 12, 0], "\(strategy)")
        }
    }

    func testAllOfflineMembersStillShareTheMessages() {
        let h = makeHarness { $0.mqtt.sharedStrategy = .random }
        let members = group(h, "g", ["a", "b", "c"])
        XCTAssertEqual(route(h, count: 9), Array(repeating: 1, count: 9))
        XCTAssertEqual(members.map(received).reduce(0, +), 9)
    }

    func testNoMatchAddressesNobody() {
        let h = makeHarness()
        _ = group(h, "g", ["a"])
        XCTAssertEqual(route(h, topic: "other", count: 1), [0])
    }

    func testOverlappingPlainSubscriptionsGiveOneDeliveryAtTheHighestQoS() {
        let h = makeHarness()
        let a = h.session("a")
        subscribe(h, a, "t/+", qos: .atMostOnce, subId: 1)
        subscribe(h, a, "t/#", qos: .exactlyOnce, subId: 2)
        subscribe(h, a, "t/x", qos: .atLeastOnce)
        XCTAssertEqual(route(h, topic: "t/x", count: 1, qos: .exactlyOnce), [1])
        XCTAssertEqual(received(a), 1)
        let d = a.outbound.queue.first!
        XCTAssertEqual(d.qos, .exactlyOnce)
        XCTAssertEqual(d.subscriptionIds.sorted(), [1, 2])
    }

    /// Overlaps are merged whether the router finds a session's delivery by searching its short
    /// list or, past `scratchListLimit` sessions, by its dictionary; a shared subscription of
    /// the same session stays a delivery of its own.
    func testOverlapsMergeForFewAndForManySessions() {
        for count in [1, LoopContext.scratchListLimit, LoopContext.scratchListLimit + 1, 40] {
            let h = makeHarness()
            let sessions = (0..<count).map { h.session("s\($0)") }
            for (i, s) in sessions.enumerated() {
                subscribe(h, s, "t/+", qos: .atMostOnce, subId: 1)
                subscribe(h, s, "t/#", qos: .atLeastOnce, subId: 2)
                if i == 0 { subscribe(h, s, "$share/g/t/x", qos: .atMostOnce) }
            }
            XCTAssertEqual(route(h, topic: "t/x", count: 1), [count + 1], "\(count) sessions")
            XCTAssertEqual(received(sessions[0]), 2, "\(count) sessions: one merged, one shared")
            for s in sessions.dropFirst() { XCTAssertEqual(received(s), 1, "\(count) sessions") }
            for s in sessions {
                let merged = s.outbound.queue.first { !$0.subscriptionIds.isEmpty }!
                XCTAssertEqual(merged.qos, .atLeastOnce)
                XCTAssertEqual(merged.subscriptionIds.sorted(), [1, 2])
            }
            // The next message starts from an empty list and dictionary.
            XCTAssertEqual(route(h, topic: "t/y", count: 1), [count])
        }
    }

    func testDeliveredQoSIsTheLowerOfMessageAndSubscription() {
        let h = makeHarness()
        let a = h.session("a")
        subscribe(h, a, "$share/g/t", qos: .atLeastOnce)
        _ = route(h, count: 1, qos: .exactlyOnce)
        XCTAssertEqual(a.outbound.queue.first?.qos, .atLeastOnce)
    }

    func testNoLocalSkipsThePublisher() {
        let h = makeHarness()
        let a = h.session("a"), b = h.session("b")
        for s in [a, b] {
            h.ctx.trie.insert(ParsedFilter.parse("t")!,
                              entry: SubscriberEntry(session: s, options: SubscriptionOptions(qos: .atLeastOnce, noLocal: true)))
        }
        let m = Message(topic: "t", payload: payload("m"), qos: .atLeastOnce, retain: false, origin: "a", now: h.loop.now)
        XCTAssertEqual(h.ctx.route(m), 1)
        XCTAssertEqual([received(a), received(b)], [0, 1])
    }
}
