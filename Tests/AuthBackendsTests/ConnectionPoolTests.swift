import AuthBackends
import Logging
import NIOConcurrencyHelpers
import NIOCore
import XCTest

/// A database in memory: connects while `up`, counts what runs at once.
private final class FakeDB: Sendable {
    let state = NIOLockedValueBox((up: true, running: 0, maxRunning: 0, connects: 0, generation: 0))
    /// A connect made while down waits until the database is up again (a client library that
    /// waits out its own timeout, as libmongoc's server selection does, taken to the limit).
    let connectWaitsWhileDown: Bool
    init(connectWaitsWhileDown: Bool = false) { self.connectWaitsWhileDown = connectWaitsWhileDown }
    final class Conn: Sendable {
        let generation: Int
        init(_ g: Int) { generation = g }
    }

    var driver: ConnectionPool<Conn>.Driver {
        ConnectionPool<Conn>.Driver(connect: {
            while self.connectWaitsWhileDown && !self.state.withLockedValue({ $0.up }) { usleep(5_000) }
            return try self.state.withLockedValue { s in
                guard s.up else { throw BackendError.unavailable("connection refused") }
                s.connects += 1
                return Conn(s.generation)
            }
        }, close: { _ in })
    }

    func query(_ c: Conn, sleep: UInt32 = 20_000) throws -> Int {
        try state.withLockedValue { s in
            guard s.up, s.generation == c.generation else { throw BackendError.connectionLost("server gone") }
            s.running += 1
            s.maxRunning = max(s.maxRunning, s.running)
        }
        usleep(sleep)
        state.withLockedValue { $0.running -= 1 }
        return c.generation
    }

    func set(up: Bool) { state.withLockedValue { s in s.up = up; if !up { s.generation += 1 } } }
}

final class ConnectionPoolTests: XCTestCase {
    private func makePool(_ db: FakeDB, size: Int = 4, queue: Int = 100) -> ConnectionPool<FakeDB.Conn> {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return ConnectionPool(options: .init(size: size, maxQueue: queue, acquireTimeout: .seconds(10),
                                             reconnectInitial: .milliseconds(10), reconnectMax: .milliseconds(50)),
                              driver: db.driver, logger: logger)
    }

    private func waitUntil(_ what: String, _ cond: () -> Bool) async throws {
        for _ in 0..<500 {
            if cond() { return }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTFail("timed out waiting for \(what)")
    }

    func testAtMostSizeRunAtOnceAndAllAreServed() async throws {
        let db = FakeDB()
        let pool = makePool(db, size: 4)
        pool.start()
        try await waitUntil("connected") { pool.isReachable }
        let served = try await withThrowingTaskGroup(of: Int.self) { g in
            for _ in 0..<40 { g.addTask { try await pool.withConnection { try db.query($0) } } }
            var n = 0
            for try await _ in g { n += 1 }
            return n
        }
        XCTAssertEqual(served, 40)
        XCTAssertLessThanOrEqual(db.state.withLockedValue { $0.maxRunning }, 4)
        await pool.shutdown()
    }

    func testQueueIsBounded() async throws {
        let db = FakeDB()
        let pool = makePool(db, size: 1, queue: 2)
        pool.start()
        try await waitUntil("connected") { pool.isReachable }
        let results = await withTaskGroup(of: Bool.self) { g in
            for _ in 0..<10 { g.addTask { (try? await pool.withConnection { try db.query($0, sleep: 200_000) }) != nil } }
            var ok = 0
            for await r in g where r { ok += 1 }
            return ok
        }
        XCTAssertGreaterThanOrEqual(results, 1)
        XCTAssertLessThan(results, 10, "beyond one running and two queued, requests fail at once")
        await pool.shutdown()
    }

    func testDownAnswersAtOnceThenReconnects() async throws {
        let db = FakeDB()
        let pool = makePool(db, size: 2)
        pool.start()
        try await waitUntil("connected") { pool.isReachable }
        db.set(up: false)
        // The first requests find dead connections; then the pool knows it is down.
        for _ in 0..<4 { _ = try? await pool.withConnection { try db.query($0) } }
        try await waitUntil("unreachable") { !pool.isReachable }
        do {
            _ = try await pool.withConnection { try db.query($0) }
            XCTFail("should fail while down")
        } catch let e as BackendError {
            guard case .unavailable = e else { return XCTFail("\(e)") }
        }
        db.set(up: true)
        try await waitUntil("reconnected") { pool.isReachable }
        let g = try await pool.withConnection { try db.query($0) }
        XCTAssertEqual(g, 1, "a fresh connection")
        await pool.shutdown()
    }

    func testSlowReconnectsDoNotHoldRequests() async throws {
        let db = FakeDB(connectWaitsWhileDown: true)
        let pool = makePool(db, size: 2)   // acquireTimeout 10 s
        pool.start()
        try await waitUntil("connected") { pool.isReachable }
        db.set(up: false)
        for _ in 0..<4 { _ = try? await pool.withConnection { try db.query($0) } }
        try await waitUntil("unreachable") { !pool.isReachable }
        // Both slots are reconnecting, blocked until the database is back: requests are
        // answered unavailable, not queued until the acquire timeout (overloaded).
        for _ in 0..<5 {
            do {
                _ = try await pool.withConnection { try db.query($0) }
                XCTFail("should fail while down")
            } catch let e as BackendError {
                guard case .unavailable = e else { return XCTFail("\(e)") }
            }
        }
        db.set(up: true)
        try await waitUntil("reconnected") { pool.isReachable }
        _ = try await pool.withConnection { try db.query($0) }
        await pool.shutdown()
    }
}
