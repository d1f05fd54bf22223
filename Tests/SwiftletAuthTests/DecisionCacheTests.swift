import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import XCTest
@testable import SwiftletAuth

// DecisionCache: the broker's shared cache of auth/ACL answers. Time is given as explicit
// NIODeadline values (and an EmbeddedEventLoop's manual clock for `lookup`), never slept.

private typealias Cache = DecisionCache<Bool>

private func key(_ client: String = "c1", user: String = "u1", _ detail: String = "a/b", kind: UInt8 = 2) -> Cache.Key {
    Cache.Key(kind: kind, clientId: client, username: user, detail: detail)
}

private func at(_ seconds: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(seconds) * 1_000_000_000) }

/// The value of a future on an embedded loop (runs the loop; fails the test when unresolved).
func settled<T>(_ f: EventLoopFuture<T>, _ loop: EmbeddedEventLoop,
                file: StaticString = #filePath, line: UInt = #line) throws -> T {
    var r: Result<T, Error>?
    f.whenComplete { r = $0 }
    loop.run()
    guard let r else {
        XCTFail("future did not complete", file: file, line: line)
        throw CancellationError()
    }
    return try r.get()
}

/// Counts `load` calls and hands out futures the test completes later.
private final class Loader {
    let loop: EventLoop
    var calls = 0
    var promises: [EventLoopPromise<(Bool, TimeAmount)>] = []
    init(_ loop: EventLoop) { self.loop = loop }

    func pending() -> EventLoopFuture<(Bool, TimeAmount)> {
        calls += 1
        let p = loop.makePromise(of: (Bool, TimeAmount).self)
        promises.append(p)
        return p.futureResult
    }

    func now(_ v: Bool, ttl: TimeAmount) -> EventLoopFuture<(Bool, TimeAmount)> {
        calls += 1
        return loop.makeSucceededFuture((v, ttl))
    }
}

final class DecisionCacheTests: XCTestCase {
    var loop: EmbeddedEventLoop!

    override func setUp() {
        loop = EmbeddedEventLoop()
    }

    override func tearDown() {
        try? loop.syncShutdownGracefully()
    }

    // MARK: get / put

    /// A client id, username or topic that is only canonically equal to a cached one is a
    /// different question [MQTT-4.7.3-4].
    func testKeysCompareBytes() {
        let c = Cache(capacity: 10)
        let pre = "caf\u{E9}", dec = "cafe\u{301}"
        c.put(key(pre, user: pre, pre), true, ttl: .seconds(60), now: at(0))
        XCTAssertEqual(c.get(key(pre, user: pre, pre), now: at(1)), true)
        XCTAssertNil(c.get(key(dec, user: pre, pre), now: at(1)))
        XCTAssertNil(c.get(key(pre, user: dec, pre), now: at(1)))
        XCTAssertNil(c.get(key(pre, user: pre, dec), now: at(1)))
    }

    func testMissThenHit() {
        let c = Cache(capacity: 10)
        XCTAssertNil(c.get(key(), now: at(0)))
        XCTAssertEqual(c.misses, 1)
        c.put(key(), true, ttl: .seconds(60), now: at(0))
        XCTAssertEqual(c.get(key(), now: at(1)), true)
        XCTAssertEqual(c.hits, 1)
        // Keys differ by every field.
        XCTAssertNil(c.get(key("c2"), now: at(1)))
        XCTAssertNil(c.get(key(user: "u2"), now: at(1)))
        XCTAssertNil(c.get(key(kind: 1), now: at(1)))
        XCTAssertNil(c.get(key("c1", user: "u1", "a/c"), now: at(1)))
        XCTAssertEqual(c.count, 1)
    }

    func testEntryExpiresExactlyAtItsTTL() {
        let c = Cache(capacity: 10)
        c.put(key(), true, ttl: .seconds(60), now: at(100))
        XCTAssertEqual(c.get(key(), now: at(159)), true)
        XCTAssertEqual(c.get(key(), now: at(159) + .nanoseconds(999_999_999)), true)
        XCTAssertNil(c.get(key(), now: at(160)))
        XCTAssertEqual(c.count, 0, "an expired entry is removed when found")
    }

    func testAllowAndDenyKeepTheirOwnTTL() throws {
        // What AuthChain does: allows for 60 s, denies for 5 s, through `lookup`.
        let c = Cache(capacity: 10)
        let l = Loader(loop)
        let allowKey = key(user: "alice", "allowed/topic")
        let denyKey = key(user: "alice", "denied/topic")
        XCTAssertEqual(try settled(c.lookup(allowKey, now: loop.now, on: loop) { l.now(true, ttl: .seconds(60)) }, loop), true)
        XCTAssertEqual(try settled(c.lookup(denyKey, now: loop.now, on: loop) { l.now(false, ttl: .seconds(5)) }, loop), false)
        XCTAssertEqual(l.calls, 2)

        loop.advanceTime(to: at(4))
        XCTAssertEqual(c.get(allowKey, now: loop.now), true)
        XCTAssertEqual(c.get(denyKey, now: loop.now), false)

        loop.advanceTime(to: at(5))
        XCTAssertEqual(c.get(allowKey, now: loop.now), true)
        XCTAssertNil(c.get(denyKey, now: loop.now), "deny expired after 5 s")
        XCTAssertEqual(try settled(c.lookup(denyKey, now: loop.now, on: loop) { l.now(false, ttl: .seconds(5)) }, loop), false)
        XCTAssertEqual(l.calls, 3, "an expired deny is asked again")

        loop.advanceTime(to: at(59))
        XCTAssertEqual(try settled(c.lookup(allowKey, now: loop.now, on: loop) { l.now(true, ttl: .seconds(60)) }, loop), true)
        XCTAssertEqual(l.calls, 3, "a fresh allow is answered from the cache")

        loop.advanceTime(to: at(60))
        XCTAssertEqual(try settled(c.lookup(allowKey, now: loop.now, on: loop) { l.now(true, ttl: .seconds(60)) }, loop), true)
        XCTAssertEqual(l.calls, 4, "allow expired after 60 s")
    }

    func testPutRefreshesValueAndExpiry() {
        let c = Cache(capacity: 10)
        c.put(key(), true, ttl: .seconds(10), now: at(0))
        c.put(key(), false, ttl: .seconds(10), now: at(8))
        XCTAssertEqual(c.get(key(), now: at(15)), false)
        XCTAssertEqual(c.count, 1)
    }

    func testZeroOrNegativeTTLIsNotCached() throws {
        let c = Cache(capacity: 10)
        c.put(key(), true, ttl: .zero, now: at(0))
        c.put(key("c2"), true, ttl: .seconds(-1), now: at(0))
        XCTAssertEqual(c.count, 0)

        let l = Loader(loop)
        XCTAssertEqual(try settled(c.lookup(key(), now: loop.now, on: loop) { l.now(true, ttl: .zero) }, loop), true)
        XCTAssertEqual(try settled(c.lookup(key(), now: loop.now, on: loop) { l.now(true, ttl: .zero) }, loop), true)
        XCTAssertEqual(l.calls, 2, "a ttl 0 answer is asked again every time")
        XCTAssertEqual(c.count, 0)
    }

    // MARK: LRU

    func testLeastRecentlyUsedIsEvictedAtCapacity() {
        let c = Cache(capacity: 3)
        for (i, k) in ["a", "b", "c"].enumerated() {
            c.put(key(k), true, ttl: .seconds(60), now: at(Int64(i)))
        }
        XCTAssertEqual(c.get(key("a"), now: at(3)), true)  // a is now the most recent; b the least
        c.put(key("d"), true, ttl: .seconds(60), now: at(4))
        XCTAssertEqual(c.count, 3)
        XCTAssertEqual(c.evictions, 1)
        XCTAssertNil(c.get(key("b"), now: at(5)), "least recently used entry evicted")
        XCTAssertEqual(c.get(key("a"), now: at(5)), true)
        XCTAssertEqual(c.get(key("c"), now: at(5)), true)
        XCTAssertEqual(c.get(key("d"), now: at(5)), true)

        // Re-putting an existing key refreshes its position without evicting anything.
        c.put(key("a"), false, ttl: .seconds(60), now: at(6))
        XCTAssertEqual(c.evictions, 1)
        // Order now (most recent first): a, d, c -> c goes next.
        c.put(key("e"), true, ttl: .seconds(60), now: at(7))
        XCTAssertNil(c.get(key("c"), now: at(8)))
        XCTAssertEqual(c.get(key("a"), now: at(8)), false)
        XCTAssertEqual(c.evictions, 2)
    }

    func testCapacityIsAtLeastOne() {
        let c = Cache(capacity: 0)
        XCTAssertEqual(c.capacity, 1)
        c.put(key("a"), true, ttl: .seconds(60), now: at(0))
        c.put(key("b"), true, ttl: .seconds(60), now: at(0))
        XCTAssertEqual(c.count, 1)
        XCTAssertEqual(c.get(key("b"), now: at(0)), true)
    }

    // MARK: collapsing identical lookups

    func testHundredIdenticalLookupsInFlightLoadOnce() throws {
        let c = Cache(capacity: 10)
        let l = Loader(loop)
        let futures = (0..<100).map { _ in c.lookup(key(), now: loop.now, on: loop) { l.pending() } }
        loop.run()
        XCTAssertEqual(l.calls, 1)
        XCTAssertEqual(c.collapsed, 99)
        l.promises[0].succeed((true, .seconds(60)))
        for f in futures { XCTAssertEqual(try settled(f, loop), true) }
        // Settled and cached: the next lookup does not load either.
        XCTAssertEqual(try settled(c.lookup(key(), now: loop.now, on: loop) { l.pending() }, loop), true)
        XCTAssertEqual(l.calls, 1)
    }

    func testDifferentKeysAreNotCollapsed() {
        let c = Cache(capacity: 10)
        let l = Loader(loop)
        _ = c.lookup(key("c1"), now: loop.now, on: loop) { l.pending() }
        _ = c.lookup(key("c2"), now: loop.now, on: loop) { l.pending() }
        _ = c.lookup(key("c1", "x/y"), now: loop.now, on: loop) { l.pending() }
        XCTAssertEqual(l.calls, 3)
        XCTAssertEqual(c.collapsed, 0)
        for p in l.promises { p.succeed((true, .seconds(1))) }
        loop.run()
    }

    func testConcurrentLookupsFromManyThreadsLoadOnce() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let c = Cache(capacity: 10)
        let gate = group.next().makePromise(of: (Bool, TimeAmount).self)
        let calls = NIOLockedValueBox(0)
        let futures = NIOLockedValueBox<[EventLoopFuture<Bool>]>([])
        DispatchQueue.concurrentPerform(iterations: 100) { i in
            let el = group.next()
            let f = c.lookup(key(), now: el.now, on: el) {
                calls.withLockedValue { $0 += 1 }
                return gate.futureResult
            }
            futures.withLockedValue { $0.append(f) }
        }
        XCTAssertEqual(calls.withLockedValue { $0 }, 1)
        gate.succeed((false, .seconds(5)))
        for f in futures.withLockedValue({ $0 }) { XCTAssertEqual(try f.wait(), false) }
        XCTAssertEqual(c.collapsed, 99)
    }

    func testFailedLoadFailsEveryWaiterAndIsNotCached() throws {
        struct Boom: Error {}
        let c = Cache(capacity: 10)
        let l = Loader(loop)
        let a = c.lookup(key(), now: loop.now, on: loop) { l.pending() }
        let b = c.lookup(key(), now: loop.now, on: loop) { l.pending() }
        l.promises[0].fail(Boom())
        XCTAssertThrowsError(try settled(a, loop))
        XCTAssertThrowsError(try settled(b, loop))
        XCTAssertEqual(c.count, 0)
        // Nothing left in flight: the next lookup loads again.
        XCTAssertEqual(try settled(c.lookup(key(), now: loop.now, on: loop) { l.now(true, ttl: .seconds(1)) }, loop), true)
        XCTAssertEqual(l.calls, 2)
    }

    // MARK: invalidation

    private func filled() -> Cache {
        let c = Cache(capacity: 100)
        c.put(key("c1", user: "alice", "t/1"), true, ttl: .seconds(60), now: at(0))
        c.put(key("c1", user: "alice", "t/2"), true, ttl: .seconds(60), now: at(0))
        c.put(key("c2", user: "alice", "t/1"), false, ttl: .seconds(60), now: at(0))
        c.put(key("c3", user: "bob", "t/1"), true, ttl: .seconds(60), now: at(0))
        c.put(key("c4", user: "", "t/1"), true, ttl: .seconds(60), now: at(0))
        return c
    }

    func testInvalidateAll() {
        let c = filled()
        let g = c.generation.load(ordering: .relaxed)
        XCTAssertEqual(c.invalidate(.all), 5)
        XCTAssertEqual(c.count, 0)
        XCTAssertGreaterThan(c.generation.load(ordering: .relaxed), g)
    }

    func testInvalidateByClientId() {
        let c = filled()
        XCTAssertEqual(c.invalidate(.clientId("c1")), 2)
        XCTAssertNil(c.get(key("c1", user: "alice", "t/1"), now: at(1)))
        XCTAssertNil(c.get(key("c1", user: "alice", "t/2"), now: at(1)))
        XCTAssertEqual(c.get(key("c2", user: "alice", "t/1"), now: at(1)), false)
        XCTAssertEqual(c.get(key("c3", user: "bob", "t/1"), now: at(1)), true)
        XCTAssertEqual(c.invalidate(.clientId("nobody")), 0)
        XCTAssertEqual(c.count, 3)
    }

    func testInvalidateByUsername() {
        let c = filled()
        let g = c.generation.load(ordering: .relaxed)
        XCTAssertEqual(c.invalidate(.username("alice")), 3)
        XCTAssertEqual(c.count, 2)
        XCTAssertEqual(c.get(key("c3", user: "bob", "t/1"), now: at(1)), true)
        XCTAssertEqual(c.get(key("c4", user: "", "t/1"), now: at(1)), true)
        XCTAssertEqual(c.invalidate(.username("carol")), 0)
        XCTAssertEqual(c.generation.load(ordering: .relaxed), g + 2, "every invalidation bumps the generation")
    }

    func testLookupInFlightDuringInvalidationIsNotCached() throws {
        let c = Cache(capacity: 10)
        let l = Loader(loop)
        let f = c.lookup(key(), now: loop.now, on: loop) { l.pending() }
        c.invalidate(.username("u1"))
        l.promises[0].succeed((true, .seconds(60)))
        XCTAssertEqual(try settled(f, loop), true, "the waiter still gets the answer")
        XCTAssertEqual(c.count, 0, "but the answer from before the invalidation is not kept")
        XCTAssertEqual(try settled(c.lookup(key(), now: loop.now, on: loop) { l.now(false, ttl: .seconds(60)) }, loop), false)
        XCTAssertEqual(l.calls, 2, "the next lookup reaches the provider")
        // A lookup that starts after the invalidation is cached again.
        XCTAssertEqual(c.get(key(), now: loop.now), false)
    }
}
