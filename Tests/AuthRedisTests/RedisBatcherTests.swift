import AuthBackends
import AuthRedis
import NIOConcurrencyHelpers
import XCTest

/// RedisBatcher: every request gets exactly its own replies, however requests are grouped
/// into round trips; no more round trips at once than lanes; a full queue fails at once.
final class RedisBatcherTests: XCTestCase {
    /// A fake Redis that echoes each command's first argument and records the batch sizes.
    final class Echo: Sendable {
        let batches = NIOLockedValueBox<[Int]>([])
        let running = NIOLockedValueBox((now: 0, most: 0))

        func run(_ commands: [[[UInt8]]]) async throws -> [RedisValue] {
            running.withLockedValue { $0.now += 1; $0.most = max($0.most, $0.now) }
            defer { running.withLockedValue { $0.now -= 1 } }
            batches.withLockedValue { $0.append(commands.count) }
            try await Task.sleep(nanoseconds: 2_000_000)
            return commands.map { .string($0[0]) }
        }
    }

    func testEveryRequestGetsItsOwnRepliesAndRoundTripsAreShared() async throws {
        let echo = Echo()
        let batcher = RedisBatcher(lanes: 2, maxQueue: 10_000) { try await echo.run($0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<500 {
                group.addTask {
                    let commands = (0..<(1 + i % 3)).map { [Array("r\(i)-\($0)".utf8)] }
                    let replies = try await batcher.execute(commands)
                    XCTAssertEqual(replies, commands.map { .string($0[0]) })
                }
            }
            try await group.waitForAll()
        }
        let batches = echo.batches.withLockedValue { $0 }
        XCTAssertEqual(batches.reduce(0, +), (0..<500).map { 1 + $0 % 3 }.reduce(0, +))
        XCTAssertLessThan(batches.count, 500, "concurrent requests shared round trips")
        XCTAssertLessThanOrEqual(echo.running.withLockedValue { $0.most }, 2)
    }

    func testAFailedRoundTripFailsItsRequestsAndAFullQueueFailsAtOnce() async throws {
        let (release, releaser) = AsyncStream<Void>.makeStream()
        let started = NIOLockedValueBox(0)
        let batcher = RedisBatcher(lanes: 1, maxBatch: 1, maxQueue: 0) { commands in
            let n = started.withLockedValue { $0 += 1; return $0 }
            if n == 1 {
                for await _ in release { break }   // the first round trip holds the only lane
                throw BackendError.connectionLost("gone")
            }
            return commands.map { .string($0[0]) }
        }
        async let first: [RedisValue] = batcher.execute([[Array("a".utf8)]])
        while started.withLockedValue({ $0 }) == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        do {
            _ = try await batcher.execute([[Array("b".utf8)]])
            XCTFail("queue of 0 with the lane busy: overloaded")
        } catch let e as BackendError {
            guard case .overloaded = e else { return XCTFail("\(e)") }
        }
        releaser.yield(())
        do {
            _ = try await first
            XCTFail("the round trip failed")
        } catch let e as BackendError {
            XCTAssertEqual(e, .connectionLost("gone"))
        }
        let after = try await batcher.execute([[Array("c".utf8)]])
        XCTAssertEqual(after, [.string(Array("c".utf8))])
    }
}
