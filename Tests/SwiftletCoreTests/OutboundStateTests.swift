import SwiftletRouting
import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

final class OutboundStateTests: XCTestCase {
    private var h: Harness!
    private var session: Session!
    private let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    override func setUp() {
        super.setUp()
        h = makeHarness()
        session = h.session("c")
    }

    private func delivery(_ qos: QoS, _ text: String = "m", expiry: UInt32? = nil, at: NIODeadline? = nil) -> Delivery {
        let m = Message(topic: "t", payload: payload(text), qos: qos, retain: false, expiryInterval: expiry, now: at ?? t0)
        return Delivery(session: session, message: m, qos: qos, retainFlag: false, subscriptionIds: [])
    }

    private func text(_ d: Delivery) -> String { String(buffer: d.message.payload) }

    /// The packet id of a `.send`, nil for anything else (and for QoS 0 sends).
    private func sentId(_ r: OutboundState.EnqueueResult) -> UInt16? {
        if case .send(_, let id) = r { return id }
        return nil
    }

    private func isSend(_ r: OutboundState.EnqueueResult) -> Bool {
        if case .send = r { return true }
        return false
    }

    private func isQueued(_ r: OutboundState.EnqueueResult) -> Bool {
        if case .queued = r { return true }
        return false
    }

    func testSendsUpToTheWindowThenQueues() {
        var o = OutboundState(window: 2, maxQueue: 10, queueQoS0: true)
        let r = (0..<4).map { _ in o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0) }
        XCTAssertEqual(r.map(isSend), [true, true, false, false])
        XCTAssertEqual(r.map(isQueued), [false, false, true, true])
        XCTAssertEqual(o.inflightCount, 2)
        XCTAssertEqual(o.queue.count, 2)
    }

    func testWindowIsAtLeastOne() {
        let o = OutboundState(window: 0, maxQueue: 10, queueQoS0: true)
        XCTAssertEqual(o.window, 1)
    }

    func testQoS0IsSentPastAFullWindowWhenNothingIsQueued() {
        var o = OutboundState(window: 1, maxQueue: 10, queueQoS0: true)
        XCTAssertNotNil(sentId(o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0)))
        let r = o.enqueue(delivery(.atMostOnce), online: true, writable: true, now: t0)
        XCTAssertTrue(isSend(r))
        XCTAssertNil(sentId(r))
        XCTAssertEqual(o.inflightCount, 1)
    }

    func testQoS0QueuesBehindQueuedMessagesToKeepOrder() {
        var o = OutboundState(window: 1, maxQueue: 10, queueQoS0: true)
        _ = o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0)
        XCTAssertTrue(isQueued(o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0)))
        XCTAssertTrue(isQueued(o.enqueue(delivery(.atMostOnce), online: true, writable: true, now: t0)))
    }

    func testQoS0IsDroppedOfflineWhenQueueQoS0IsFalse() {
        var o = OutboundState(window: 5, maxQueue: 10, queueQoS0: false)
        guard case .dropped = o.enqueue(delivery(.atMostOnce), online: false, writable: false, now: t0) else {
            return XCTFail("QoS 0 should be dropped")
        }
        XCTAssertTrue(isQueued(o.enqueue(delivery(.atLeastOnce), online: false, writable: false, now: t0)))
        XCTAssertEqual(o.queue.count, 1)
    }

    func testQoS0IsQueuedOfflineWhenQueueQoS0IsTrue() {
        var o = OutboundState(window: 5, maxQueue: 10, queueQoS0: true)
        XCTAssertTrue(isQueued(o.enqueue(delivery(.atMostOnce), online: false, writable: false, now: t0)))
    }

    func testQoS0IsDroppedForAnUnwritableConnection() {
        var o = OutboundState(window: 5, maxQueue: 10, queueQoS0: true)
        guard case .dropped = o.enqueue(delivery(.atMostOnce), online: true, writable: false, now: t0) else {
            return XCTFail("QoS 0 should be dropped for a slow consumer")
        }
        XCTAssertTrue(isQueued(o.enqueue(delivery(.atLeastOnce), online: true, writable: false, now: t0)))
    }

    func testRetainedQoS0WaitsInTheQueueForAnUnwritableConnection() {
        var o = OutboundState(window: 5, maxQueue: 10, queueQoS0: true)
        var d = delivery(.atMostOnce, "retained")
        d.retainFlag = true
        XCTAssertTrue(isQueued(o.enqueue(d, online: true, writable: false, now: t0)))
        let (send, _) = o.drain(now: t0, writable: true)
        XCTAssertEqual(send.map { text($0.0) }, ["retained"])
    }

    func testNothingIsQueuedWhenMaxQueueIsZero() {
        var o = OutboundState(window: 5, maxQueue: 0, queueQoS0: true)
        guard case .dropped = o.enqueue(delivery(.atLeastOnce), online: false, writable: false, now: t0) else {
            return XCTFail("should be dropped")
        }
    }

    func testFullQueueEvictsTheOldest() {
        var o = OutboundState(window: 5, maxQueue: 3, queueQoS0: true)
        var evicted: [String] = []
        for i in 0..<5 {
            switch o.enqueue(delivery(.atLeastOnce, "m\(i)"), online: false, writable: false, now: t0) {
            case .queuedEvicting(let old): evicted.append(text(old))
            case .queued: break
            default: XCTFail("unexpected result for m\(i)")
            }
        }
        XCTAssertEqual(evicted, ["m0", "m1"])
        XCTAssertEqual(o.queue.map(text), ["m2", "m3", "m4"])
    }

    func testEvictionsAreCountedAsDropped() {
        let h = makeHarness { $0.mqtt.maxQueuedMessages = 2 }
        let s = h.session("offline")
        for _ in 0..<5 {
            let m = Message(topic: "t", payload: payload("m"), qos: .atLeastOnce, retain: false, now: h.loop.now)
            s.deliver(Delivery(session: s, message: m, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []), ctx: h.ctx)
        }
        XCTAssertEqual(s.outbound.queue.count, 2)
        XCTAssertEqual(h.ctx.stats.messagesDropped, 3)
    }

    func testPacketIdsStartAtOneAndIncrease() {
        var o = OutboundState(window: 10, maxQueue: 10, queueQoS0: true)
        let ids = (0..<3).map { _ in sentId(o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0)) }
        XCTAssertEqual(ids, [1, 2, 3])
    }

    func testPacketIdsWrapAndSkipIdsInUse() {
        var o = OutboundState(window: 70_000, maxQueue: 10, queueQoS0: true)
        let d = delivery(.atLeastOnce)
        let ids = (1...Int(UInt16.max)).map { _ in sentId(o.enqueue(d, online: true, writable: true, now: t0)) }
        XCTAssertEqual(ids, (1...UInt16.max).map { $0 })
        XCTAssertTrue(o.complete(3))
        XCTAssertTrue(o.complete(10))
        // Wraps past 65535 to 1, skips 1 and 2 (still in flight), never hands out 0.
        XCTAssertEqual(sentId(o.enqueue(d, online: true, writable: true, now: t0)), 3)
        XCTAssertEqual(sentId(o.enqueue(d, online: true, writable: true, now: t0)), 10)
        XCTAssertEqual(o.inflightCount, Int(UInt16.max))
    }

    func testCompleteFreesTheWindow() {
        var o = OutboundState(window: 1, maxQueue: 10, queueQoS0: true)
        let id = sentId(o.enqueue(delivery(.atLeastOnce, "a"), online: true, writable: true, now: t0))!
        _ = o.enqueue(delivery(.atLeastOnce, "b"), online: true, writable: true, now: t0)
        XCTAssertTrue(o.drain(now: t0, writable: true).send.isEmpty)
        XCTAssertTrue(o.complete(id))
        XCTAssertFalse(o.complete(id))
        let sent = o.drain(now: t0, writable: true).send
        XCTAssertEqual(sent.map { text($0.0) }, ["b"])
        XCTAssertNotNil(sent.first?.1)
        XCTAssertTrue(o.queue.isEmpty)
    }

    func testReceivedMovesToAwaitingCompAndRestamps() {
        var o = OutboundState(window: 5, maxQueue: 10, queueQoS0: true)
        let id = sentId(o.enqueue(delivery(.exactlyOnce), online: true, writable: true, now: t0))!
        XCTAssertEqual(o.inflight[id]?.phase, .awaitingAck)
        XCTAssertTrue(o.received(id, now: t0 + .seconds(3)))
        XCTAssertEqual(o.inflight[id]?.phase, .awaitingComp)
        XCTAssertEqual(o.inflight[id]?.sentAt, t0 + .seconds(3))
        XCTAssertFalse(o.received(999, now: t0))
        XCTAssertTrue(o.complete(id))
        XCTAssertEqual(o.inflightCount, 0)
    }

    func testFailedEndsTheFlow() {
        var o = OutboundState(window: 5, maxQueue: 10, queueQoS0: true)
        let id = sentId(o.enqueue(delivery(.exactlyOnce), online: true, writable: true, now: t0))!
        o.failed(id)
        XCTAssertEqual(o.inflightCount, 0)
        XCTAssertFalse(o.complete(id))
    }

    func testInflightInOrderFollowsSendOrder() {
        var o = OutboundState(window: 10, maxQueue: 10, queueQoS0: true)
        var ids: [UInt16] = []
        for i in 0..<6 { ids.append(sentId(o.enqueue(delivery(.atLeastOnce, "m\(i)"), online: true, writable: true, now: t0))!) }
        XCTAssertTrue(o.complete(ids[2]))
        XCTAssertTrue(o.received(ids[4], now: t0 + .seconds(1)))
        XCTAssertEqual(o.inflightInOrder().map { text($0.delivery) }, ["m0", "m1", "m3", "m4", "m5"])
        XCTAssertEqual(o.inflightInOrder().map(\.packetId), [ids[0], ids[1], ids[3], ids[4], ids[5]])
    }

    func testDueReturnsOldEntriesAndRestampsThem() {
        var o = OutboundState(window: 10, maxQueue: 10, queueQoS0: true)
        let a = sentId(o.enqueue(delivery(.atLeastOnce, "a"), online: true, writable: true, now: t0))!
        let b = sentId(o.enqueue(delivery(.atLeastOnce, "b"), online: true, writable: true, now: t0 + .seconds(1)))!
        _ = o.enqueue(delivery(.atLeastOnce, "c"), online: true, writable: true, now: t0 + .seconds(2))
        let now = t0 + .seconds(10)
        let due = o.due(before: t0 + .seconds(1), now: now)
        XCTAssertEqual(due.map(\.packetId), [a, b])
        XCTAssertEqual(o.inflight[a]?.sentAt, now)
        XCTAssertEqual(o.inflight[b]?.sentAt, now)
        // Restamped entries are no longer due; the third now is.
        XCTAssertEqual(o.due(before: t0 + .seconds(5), now: now).map { text($0.delivery) }, ["c"])
        XCTAssertTrue(o.due(before: t0 + .seconds(9), now: now).isEmpty)
    }

    func testDrainSkipsExpiredMessages() {
        var o = OutboundState(window: 10, maxQueue: 10, queueQoS0: true)
        _ = o.enqueue(delivery(.atLeastOnce, "short", expiry: 1, at: t0), online: false, writable: false, now: t0)
        _ = o.enqueue(delivery(.atLeastOnce, "forever"), online: false, writable: false, now: t0)
        _ = o.enqueue(delivery(.atMostOnce, "long", expiry: 60, at: t0), online: false, writable: false, now: t0)
        let (send, expired) = o.drain(now: t0 + .seconds(2), writable: true)
        XCTAssertEqual(expired.map(text), ["short"])
        XCTAssertEqual(send.map { text($0.0) }, ["forever", "long"])
        XCTAssertNotNil(send[0].1)
        XCTAssertNil(send[1].1)
        XCTAssertTrue(o.queue.isEmpty)
    }

    func testDrainStopsAtTheWindow() {
        var o = OutboundState(window: 2, maxQueue: 10, queueQoS0: true)
        for i in 0..<5 { _ = o.enqueue(delivery(.atLeastOnce, "m\(i)"), online: false, writable: false, now: t0) }
        XCTAssertEqual(o.drain(now: t0, writable: true).send.map { text($0.0) }, ["m0", "m1"])
        XCTAssertEqual(o.queue.count, 3)
    }

    /// `next`, one step at a time as the session drains: expired ones come out as such, QoS 0
    /// goes whatever the window, QoS 1 waits for room and keeps its place.
    func testNextTakesOneStepAtATime() {
        var o = OutboundState(window: 1, maxQueue: 10, queueQoS0: true)
        _ = o.enqueue(delivery(.atLeastOnce, "a"), online: false, writable: false, now: t0)
        _ = o.enqueue(delivery(.atLeastOnce, "old", expiry: 1, at: t0), online: false, writable: false, now: t0)
        _ = o.enqueue(delivery(.atMostOnce, "zero"), online: false, writable: false, now: t0)
        _ = o.enqueue(delivery(.atLeastOnce, "b"), online: false, writable: false, now: t0)
        let now = t0 + .seconds(2)
        guard case .send(let a, let idA)? = o.next(now: now) else { return XCTFail("a goes first") }
        XCTAssertEqual(text(a), "a")
        guard case .expired(let old)? = o.next(now: now) else { return XCTFail("then the expired one") }
        XCTAssertEqual(text(old), "old")
        guard case .send(let zero, let idZero)? = o.next(now: now) else { return XCTFail("QoS 0 despite the full window") }
        XCTAssertEqual(text(zero), "zero")
        XCTAssertNil(idZero)
        XCTAssertNil(o.next(now: now), "b waits: the window is full")
        XCTAssertEqual(o.queue.map(text), ["b"])
        XCTAssertTrue(o.complete(idA!))
        guard case .send(let b, let idB)? = o.next(now: now) else { return XCTFail("b once there is room") }
        XCTAssertEqual(text(b), "b")
        XCTAssertNotNil(idB)
        XCTAssertNil(o.next(now: now))
    }

    func testDrainDoesNothingWhenNotWritable() {
        var o = OutboundState(window: 2, maxQueue: 10, queueQoS0: true)
        _ = o.enqueue(delivery(.atLeastOnce), online: false, writable: false, now: t0)
        XCTAssertTrue(o.drain(now: t0, writable: false).send.isEmpty)
        XCTAssertEqual(o.queue.count, 1)
    }

    func testClearEmptiesEverything() {
        var o = OutboundState(window: 1, maxQueue: 10, queueQoS0: true)
        _ = o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0)
        _ = o.enqueue(delivery(.atLeastOnce), online: true, writable: true, now: t0)
        o.clear()
        XCTAssertEqual(o.inflightCount, 0)
        XCTAssertTrue(o.queue.isEmpty)
    }
}

/// The whole drain at once (`next` until it stops), as the tests read it; the session itself
/// sends each step as `next` returns it.
extension OutboundState {
    mutating func drain(now: NIODeadline, writable: Bool) -> (send: [(Delivery, UInt16?)], expired: [Delivery]) {
        var out: [(Delivery, UInt16?)] = []
        var expired: [Delivery] = []
        while writable, let step = next(now: now) {
            switch step {
            case .send(let d, let id): out.append((d, id))
            case .expired(let d): expired.append(d)
            }
        }
        return (out, expired)
    }
}
