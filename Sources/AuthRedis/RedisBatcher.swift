import AuthBackends
import NIOConcurrencyHelpers

/// Sends the commands of concurrent requests to Redis together: at most `lanes` round trips
/// run at once (one per pool connection), and each takes every request queued meanwhile (up
/// to `maxBatch`) as one pipeline. Under load a CONNECT then costs a share of a round trip and
/// of a thread hop instead of one each; alone it is sent at once, as before. At most
/// `maxQueue` requests wait; more fail at once with `overloaded` (answered `error`).
///
/// A lane is a task this batcher starts when a request finds no lane running and that ends
/// when the queue is empty: the batcher owns it, nothing else waits on it.
public final class RedisBatcher: Sendable {
    public typealias Run = @Sendable ([[[UInt8]]]) async throws -> [RedisValue]

    private struct Item: Sendable {
        var commands: [[[UInt8]]]
        var continuation: CheckedContinuation<[RedisValue], any Error>
    }

    private struct State {
        var queue: [Item] = []
        var head = 0
        var lanes = 0
        var waiting: Int { queue.count - head }
    }

    private let state = NIOLockedValueBox(State())
    private let lanes: Int
    private let maxBatch: Int
    private let maxQueue: Int
    private let run: Run

    public init(lanes: Int, maxBatch: Int = 64, maxQueue: Int, run: @escaping Run) {
        self.lanes = max(1, lanes)
        self.maxBatch = max(1, maxBatch)
        self.maxQueue = max(0, maxQueue)
        self.run = run
    }

    /// The replies to `commands`, in order, from one round trip shared with other requests.
    public func execute(_ commands: [[[UInt8]]]) async throws -> [RedisValue] {
        try await withCheckedThrowingContinuation { continuation in
            enum Next { case startLane, queued, full }
            let next = state.withLockedValue { s -> Next in
                if s.lanes >= lanes && s.waiting >= maxQueue { return .full }
                s.queue.append(Item(commands: commands, continuation: continuation))
                guard s.lanes < lanes else { return .queued }
                s.lanes += 1
                return .startLane
            }
            switch next {
            case .full:
                continuation.resume(throwing: BackendError.overloaded("\(lanes) round trips running and \(maxQueue) requests queued"))
            case .startLane:
                Task { await self.lane() }
            case .queued:
                break
            }
        }
    }

    /// Round trips until the queue is empty.
    private func lane() async {
        while true {
            let batch = state.withLockedValue { s -> ArraySlice<Item> in
                guard s.waiting > 0 else {
                    s.lanes -= 1
                    s.queue.removeAll(keepingCapacity: true)
                    s.head = 0
                    return []
                }
                let n = min(maxBatch, s.waiting)
                let b = s.queue[s.head..<(s.head + n)]
                s.head += n
                if s.head > 1024 && s.head * 2 > s.queue.count {
                    s.queue.removeFirst(s.head)
                    s.head = 0
                }
                return b
            }
            if batch.isEmpty { return }
            do {
                let replies = try await run(batch.flatMap(\.commands))
                var i = 0
                for item in batch {
                    let n = item.commands.count
                    guard i + n <= replies.count else {
                        item.continuation.resume(throwing: BackendError.connectionLost("\(replies.count) replies to a pipeline"))
                        continue
                    }
                    item.continuation.resume(returning: Array(replies[i..<(i + n)]))
                    i += n
                }
            } catch {
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
    }
}
