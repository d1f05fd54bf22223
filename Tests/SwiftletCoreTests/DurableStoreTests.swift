@testable import SwiftletStore
import SwiftletRouting
import SwiftletConfig
import Foundation
import Logging
import MQTTCodec
import NIOCore
import NIOPosix
import XCTest
@testable import SwiftletCore

/// The durable store without a broker process: ops applied by the writer thread come back
/// from `openAndLoad` exactly; damaged files are moved aside and salvaged.
final class DurableStoreTests: XCTestCase {
    var dir: String!
    let logger = Logger(label: "test")

    override func setUp() {
        dir = NSTemporaryDirectory() + "swiftlet-store-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var path: String { dir + "/swiftlet.db" }

    private func message(_ topic: String, _ payload: String, id: Int64, qos: QoS = .atLeastOnce, retain: Bool = false,
                         props: Properties = Properties()) -> Message {
        var b = ByteBuffer()
        b.writeString(payload)
        let m = Message(topic: topic, payload: b, qos: qos, retain: retain, properties: props, origin: "pub",
                        v5Wire: !props.isEmpty, now: .now())
        m.storeId = id
        return m
    }

    /// Submits ops through a running store and waits for their commit.
    private func commit(_ ops: [StoreOp], mode: DurabilityMode = .batched) throws -> StoreSnapshot {
        let store = DurableStore(path: path, mode: mode, commitInterval: 0.002, logger: logger)
        _ = try store.openAndLoad()
        store.start()
        // A real loop: the store's writer thread completes the promise, and an
        // EmbeddedEventLoop may only be touched from the thread that made it.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let p = group.next().makePromise(of: Void.self)
        store.submit(ops, promise: p)
        store.stop()
        XCTAssertNoThrow(try p.futureResult.wait())
        let reader = DurableStore(path: path, mode: mode, commitInterval: 0.002, logger: logger)
        let snap = try reader.openAndLoad()
        reader.stop()
        return snap
    }

    func testSessionSubscriptionsMessagesAndPacketIdsRoundTrip() throws {
        let m1 = message("a/1", "one", id: 10, props: [.userProperty("k", "v"), .contentType("text/plain")])
        let m2 = message("a/2", "two", id: 11, qos: .exactlyOnce)
        let m3 = message("a/3", "three", id: 12)
        let snap = try commit([
            .session(clientId: "c1", expiry: 3600, version: 5),
            .subscribe(clientId: "c1", filter: "a/#", options: SubscriptionOptions(qos: .exactlyOnce, noLocal: true,
                       retainAsPublished: true, retainHandling: .sendIfNew, subscriptionIdentifier: 7)),
            .enqueue(clientId: "c1", message: m1, qos: .atLeastOnce, retainFlag: false, subscriptionIds: [7]),
            .enqueue(clientId: "c1", message: m2, qos: .exactlyOnce, retainFlag: true, subscriptionIds: []),
            .enqueue(clientId: "c1", message: m3, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []),
            .sent(clientId: "c1", messageId: 10, packetId: 5),
            .sent(clientId: "c1", messageId: 11, packetId: 6),
            .released(clientId: "c1", messageId: 11),
            .awaitRel(clientId: "c1", packetId: 42),
            .awaitRel(clientId: "c1", packetId: 43),
            .rel(clientId: "c1", packetId: 43),
            .sessionOffline(clientId: "c1", at: 1_000, expiry: 3600, will: nil, willAt: 0),
        ])
        XCTAssertEqual(snap.sessions.count, 1)
        let s = try XCTUnwrap(snap.sessions.first)
        XCTAssertEqual(s.clientId, "c1")
        XCTAssertEqual(s.expiry, 3600)
        XCTAssertEqual(s.version, 5)
        XCTAssertEqual(s.disconnectedAt, 1_000)
        XCTAssertEqual(s.subscriptions.map(\.0), ["a/#"])
        XCTAssertEqual(s.subscriptions.first?.1, SubscriptionOptions(qos: .exactlyOnce, noLocal: true, retainAsPublished: true,
                                                                     retainHandling: .sendIfNew, subscriptionIdentifier: 7))
        XCTAssertEqual(s.messages.map(\.message.topic), ["a/1", "a/2", "a/3"], "stored order is kept")
        XCTAssertEqual(s.messages.map(\.state), [1, 2, 0])
        XCTAssertEqual(s.messages.map(\.packetId), [5, 6, 0])
        XCTAssertEqual(s.messages[0].subscriptionIds, [7])
        XCTAssertTrue(s.messages[1].retainFlag)
        XCTAssertEqual(s.messages[0].message.properties, [.userProperty("k", "v"), .contentType("text/plain")])
        XCTAssertEqual(String(buffer: s.messages[2].message.payload), "three")
        XCTAssertEqual(s.awaitingRel, [42])
        XCTAssertEqual(snap.maxMessageId, 12)
    }

    func testDoneAndSessionGoneForgetEverything() throws {
        let m = message("t", "x", id: 1)
        _ = try commit([
            .session(clientId: "c", expiry: 60, version: 4),
            .subscribe(clientId: "c", filter: "t", options: SubscriptionOptions(qos: .atLeastOnce)),
            .enqueue(clientId: "c", message: m, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []),
            .enqueue(clientId: "d", message: m, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []),
            .done(clientId: "c", messageId: 1),
        ])
        let report = StoreFile.check(path: path)
        XCTAssertEqual(report.counts["messages"], 1, "still referenced by d")
        let snap = try commit([.sessionGone(clientId: "c"), .done(clientId: "d", messageId: 1)])
        XCTAssertTrue(snap.sessions.isEmpty)
        XCTAssertEqual(StoreFile.check(path: path).counts["messages"], 0)
        XCTAssertEqual(StoreFile.check(path: path).counts["subscriptions"], 0)
    }

    func testAMessageEnqueuedAndDoneInOneBatchIsNeverWritten() throws {
        let acked = message("t", "acked", id: 1)
        let pending = message("t", "pending", id: 2)
        let ops: [StoreOp] = [
            .session(clientId: "c", expiry: 60, version: 4),
            .enqueue(clientId: "c", message: acked, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []),
            .enqueue(clientId: "c", message: pending, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []),
            .sent(clientId: "c", messageId: 1, packetId: 1),
            .sent(clientId: "c", messageId: 2, packetId: 2),
            .done(clientId: "c", messageId: 1),
            .done(clientId: "c", messageId: 9),  // enqueued in an earlier batch: kept
        ]
        let kept = StoreOp.coalesced(ops)
        XCTAssertEqual(kept.count, 4)
        let snap = try commit(ops)
        XCTAssertEqual(snap.sessions.first?.messages.map { String(buffer: $0.message.payload) }, ["pending"])
        XCTAssertEqual(snap.sessions.first?.messages.map(\.packetId), [2])
        XCTAssertEqual(StoreFile.check(path: path).counts["messages"], 1)
    }

    /// Submissions from one loop into the same batch share one commit future (a commit
    /// completes one promise per loop, not one per acknowledgement); another loop gets its
    /// own; both succeed only once the ops are on disk.
    func testSubmissionsFromOneLoopShareTheBatchFuture() throws {
        let store = DurableStore(path: path, mode: .batched, commitInterval: 0.002, logger: logger)
        _ = try store.openAndLoad()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let a = group.next(), b = group.next()
        // Not started yet: everything below lands in the first batch.
        let a1 = store.submit([.session(clientId: "c1", expiry: 60, version: 5)], on: a)
        let a2 = store.submit([.enqueue(clientId: "c1", message: message("t", "one", id: 1), qos: .atLeastOnce,
                                        retainFlag: false, subscriptionIds: [])], on: a)
        let b1 = store.submit([.session(clientId: "c2", expiry: 60, version: 5)], on: b)
        XCTAssertTrue(a1 === a2)
        XCTAssertFalse(a1 === b1)
        store.start()
        XCTAssertNoThrow(try a2.wait())
        XCTAssertNoThrow(try b1.wait())
        // The next batch gets a new future.
        let a3 = store.submit([.done(clientId: "c1", messageId: 1)], on: a)
        XCTAssertFalse(a3 === a1)
        XCTAssertNoThrow(try a3.wait())
        store.stop()
        XCTAssertThrowsError(try store.submit([.sessionGone(clientId: "c2")], on: a).wait())
        let reader = DurableStore(path: path, mode: .batched, commitInterval: 0.002, logger: logger)
        let snap = try reader.openAndLoad()
        reader.stop()
        XCTAssertEqual(snap.sessions.map(\.clientId).sorted(), ["c1", "c2"])
        XCTAssertEqual(snap.sessions.first { $0.clientId == "c1" }?.messages.count, 0)
    }

    func testRetainedSetReplaceClear() throws {
        let snap = try commit([
            .retain(message("r/1", "first", id: 0, retain: true)),
            .retain(message("r/1", "second", id: 0, retain: true)),
            .retain(message("r/2", "gone", id: 0, retain: true)),
            .unretain(topic: "r/2"),
        ], mode: .sync)
        XCTAssertEqual(snap.retained.map(\.topic), ["r/1"])
        XCTAssertEqual(String(buffer: snap.retained[0].payload), "second")
        XCTAssertTrue(snap.retained[0].retain)
    }

    func testDelayedWillIsStored() throws {
        var payload = ByteBuffer()
        payload.writeString("bye")
        let will = Will(topic: "w", payload: payload, qos: .atLeastOnce, retain: true, properties: [.willDelayInterval(30)])
        let snap = try commit([
            .session(clientId: "c", expiry: 600, version: 5),
            .sessionOffline(clientId: "c", at: 5, expiry: 600, will: will, willAt: 30_005),
        ])
        XCTAssertEqual(snap.sessions.first?.will, will)
        XCTAssertEqual(snap.sessions.first?.willAt, 30_005)
        let cleared = try commit([.willDone(clientId: "c")])
        XCTAssertNil(cleared.sessions.first?.will)
    }

    func testGarbageFileIsMovedAsideAndANewStoreWorks() throws {
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: path))
        XCTAssertFalse(StoreFile.check(path: path).ok)
        let snap = try commit([.retain(message("after", "ok", id: 0, retain: true))])
        XCTAssertEqual(snap.retained.map(\.topic), ["after"])
        let aside = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".damaged-") }
        XCTAssertFalse(aside.isEmpty, "the damaged file is kept for inspection")
        XCTAssertTrue(StoreFile.check(path: path).ok)
    }

    func testNewerSchemaIsMovedAsideNotSalvaged() throws {
        _ = try commit([.retain(message("old", "x", id: 0, retain: true))])
        let db = try SQLiteDatabase(path: path)
        try db.exec("PRAGMA user_version = 99")
        db.close()
        XCTAssertFalse(StoreFile.check(path: path).ok)
        let snap = try commit([])
        XCTAssertTrue(snap.retained.isEmpty)
    }

    func testTruncatedFileSalvagesWhatItCan() throws {
        var ops: [StoreOp] = []
        for i in 0..<500 { ops.append(.retain(message("t/\(i)", String(repeating: "x", count: 200), id: 0, retain: true))) }
        _ = try commit(ops)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        try? FileManager.default.removeItem(atPath: path + "-wal")
        let snap = try commit([])
        XCTAssertLessThanOrEqual(snap.retained.count, 500)
        XCTAssertTrue(StoreFile.check(path: path).ok)
    }
}
