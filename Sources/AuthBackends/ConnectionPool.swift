import DequeModule
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A fixed set of database connections used by blocking client libraries (libmariadb,
/// libpq, hiredis, ...): each call runs on a thread of its own pool, so the sidecar's IPC
/// handling never waits on the database.
///
/// - At most `size` calls run at once; more wait in a queue of at most `maxQueue`, each at
///   most `acquireTimeout`; beyond that a call fails with `BackendError.overloaded` at once.
/// - A connection whose call throws `BackendError.connectionLost` is closed and reconnected
///   in the background with capped exponential backoff (`reconnect`: 0.1 s doubling up to
///   `auto_reconnect`), the request retried once on another connection.
/// - While no connection is up, calls fail at once with `BackendError.unavailable`: the
///   broker applies its cache and fallback instead of waiting. Only at start (no connection
///   opened or failed yet) do calls wait for the first connections.
/// - Idle connections are pinged every `keepAlive` (when set), so a restarted database is
///   noticed before a client's request finds out.
/// - Transitions (database reachable / unreachable) are logged once each, not per request.
public final class ConnectionPool<Connection: Sendable>: Sendable {
    public struct Options: Sendable {
        public var size: Int
        public var maxQueue: Int
        public var acquireTimeout: TimeAmount
        public var reconnectInitial: TimeAmount
        public var reconnectMax: TimeAmount
        public var keepAlive: TimeAmount?

        public init(size: Int = 8, maxQueue: Int = 1024, acquireTimeout: TimeAmount = .seconds(4),
                    reconnectInitial: TimeAmount = .milliseconds(100), reconnectMax: TimeAmount = .seconds(1),
                    keepAlive: TimeAmount? = nil) {
            self.size = max(1, size)
            self.maxQueue = max(0, maxQueue)
            self.acquireTimeout = acquireTimeout
            self.reconnectInitial = reconnectInitial
            self.reconnectMax = max(reconnectMax, reconnectInitial)
            self.keepAlive = keepAlive
        }
    }

    /// How the pool opens, checks and closes a connection; all three run on the pool's threads
    /// and may block.
    public struct Driver: Sendable {
        public var connect: @Sendable () throws -> Connection
        public var ping: @Sendable (Connection) throws -> Void
        public var close: @Sendable (Connection) -> Void
        /// Asked after each call: false (a query timed out and left the connection unusable)
        /// closes and reconnects it.
        public var isHealthy: @Sendable (Connection) -> Bool
        public init(connect: @escaping @Sendable () throws -> Connection,
                    ping: @escaping @Sendable (Connection) throws -> Void = { _ in },
                    close: @escaping @Sendable (Connection) -> Void,
                    isHealthy: @escaping @Sendable (Connection) -> Bool = { _ in true }) {
            self.connect = connect
            self.ping = ping
            self.close = close
            self.isHealthy = isHealthy
        }
    }

    private enum Slot {
        case idle(Connection)
        case busy
        case connecting
        case down
    }

    private enum Now {
        case got(Int, Connection), wait, fail(BackendError)
    }

    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<(Int, Connection), any Error>
        var timer: Scheduled<Void>?
    }

    private struct State {
        var slots: [Slot]
        var attempts: [Int]
        var waiters: Deque<Waiter> = []
        var nextWaiter = 0
        var reachable: Bool?
        var lastError = "not connected yet"
        var closed = false
        var pingTimer: RepeatedTask?
    }

    public let options: Options
    private let driver: Driver
    private let threads: NIOThreadPool
    private let loop: any EventLoop
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    public init(options: Options, driver: Driver, logger: Logger,
                eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()) {
        self.options = options
        self.driver = driver
        self.logger = logger
        self.loop = eventLoop
        // One thread per connection, plus as many for reconnects and pings.
        self.threads = NIOThreadPool(numberOfThreads: options.size * 2)
        self.state = NIOLockedValueBox(State(slots: Array(repeating: .down, count: options.size),
                                             attempts: Array(repeating: 0, count: options.size)))
    }

    /// Opens every connection (in the background) and starts the keep-alive pings.
    public func start() {
        threads.start()
        for i in 0..<options.size { reconnect(i) }
        if let every = options.keepAlive {
            let task = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [self] _ in pingIdle() }
            state.withLockedValue { $0.pingTimer = task }
        }
    }

    /// Closes every idle connection, fails the queue, and stops the threads.
    public func shutdown() async {
        let (idle, waiters) = state.withLockedValue { s -> ([Connection], Deque<Waiter>) in
            s.closed = true
            s.pingTimer?.cancel()
            var idle: [Connection] = []
            for (i, slot) in s.slots.enumerated() {
                if case .idle(let c) = slot { idle.append(c); s.slots[i] = .down }
            }
            let w = s.waiters
            s.waiters = []
            return (idle, w)
        }
        for w in waiters { w.timer?.cancel(); w.continuation.resume(throwing: BackendError.unavailable("shutting down")) }
        for c in idle { driver.close(c) }
        try? await threads.shutdownGracefully()
    }

    /// True while at least one connection is up.
    public var isReachable: Bool { state.withLockedValue { $0.reachable == true } }

    /// Runs `body` with a connection, on a pool thread. Errors are `BackendError`s (those
    /// `body` throws are passed on).
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        var retried = false
        while true {
            let (index, connection) = try await acquire()
            do {
                let result = try await threads.runIfActive { try body(connection) }
                releaseOrDiscard(index, connection)
                return result
            } catch let e as BackendError {
                guard case .connectionLost = e else { releaseOrDiscard(index, connection, e); throw e }
                discard(index, connection, e)
                if retried { throw e }
                retried = true
            } catch {
                releaseOrDiscard(index, connection)
                throw error
            }
        }
    }

    // MARK: slots

    private func acquire() async throws -> (Int, Connection) {
        let now = state.withLockedValue { s -> Now in
            if s.closed { return .fail(.unavailable("shutting down")) }
            for (i, slot) in s.slots.enumerated() {
                if case .idle(let c) = slot { s.slots[i] = .busy; return .got(i, c) }
            }
            guard Self.anyLive(s.slots), s.reachable != false else { return .fail(.unavailable(s.lastError)) }
            guard s.waiters.count < options.maxQueue else {
                return .fail(.overloaded("\(options.size) queries running and \(s.waiters.count) queued"))
            }
            return .wait
        }
        switch now {
        case .got(let i, let c): return (i, c)
        case .fail(let e): throw e
        case .wait: break
        }
        return try await withCheckedThrowingContinuation { continuation in
            let failNow: BackendError? = state.withLockedValue { s in
                // Re-checked: a connection may have come free or died since.
                for (i, slot) in s.slots.enumerated() {
                    if case .idle(let c) = slot { s.slots[i] = .busy; continuation.resume(returning: (i, c)); return nil }
                }
                guard Self.anyLive(s.slots), s.reachable != false else { return .unavailable(s.lastError) }
                guard s.waiters.count < options.maxQueue else { return .overloaded("queue full") }
                let id = s.nextWaiter
                s.nextWaiter += 1
                let timer = loop.scheduleTask(in: options.acquireTimeout) { [self] in expire(id) }
                s.waiters.append(Waiter(id: id, continuation: continuation, timer: timer))
                return nil
            }
            if let failNow { continuation.resume(throwing: failNow) }
        }
    }

    private static func anyLive(_ slots: [Slot]) -> Bool {
        slots.contains { if case .down = $0 { return false } else { return true } }
    }

    private func expire(_ id: Int) {
        let w = state.withLockedValue { s -> Waiter? in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters.remove(at: i)
        }
        w?.continuation.resume(throwing: BackendError.overloaded("no connection free within \(options.acquireTimeout.nanoseconds / 1_000_000) ms"))
    }

    private func releaseOrDiscard(_ index: Int, _ connection: Connection, _ error: BackendError? = nil) {
        if driver.isHealthy(connection) {
            release(index, connection)
        } else {
            discard(index, connection, error ?? .connectionLost("unusable after the last call"))
        }
    }

    /// The connection is fine: to the first waiter, else idle.
    private func release(_ index: Int, _ connection: Connection) {
        let (waiter, close) = state.withLockedValue { s -> (Waiter?, Bool) in
            if s.closed { s.slots[index] = .down; return (nil, true) }
            if let w = s.waiters.popFirst() { return (w, false) }
            s.slots[index] = .idle(connection)
            return (nil, false)
        }
        if close { threads.submit { _ in self.driver.close(connection) } }
        if let waiter {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: (index, connection))
        }
    }

    /// The connection broke: close it, reconnect in the background.
    private func discard(_ index: Int, _ connection: Connection, _ error: BackendError) {
        logger.debug("pool connection \(index) lost: \(error)")
        threads.submit { _ in self.driver.close(connection) }
        let failed = state.withLockedValue { s -> Deque<Waiter> in
            s.slots[index] = .down
            s.lastError = "\(error)"
            return noteDown(&s)
        }
        fail(failed)
        scheduleReconnect(index, after: options.reconnectInitial)
    }

    /// After a slot went down: with no connection up the transition is logged once and every
    /// waiter fails (returned, to be resumed outside the lock). Slots still reconnecting do
    /// not keep them waiting: a reconnect to a database that is down may block for its whole
    /// connect timeout (libmongoc's server selection does), and meanwhile the broker's cache
    /// and fallback should answer, not the acquire timeout.
    private func noteDown(_ s: inout State) -> Deque<Waiter> {
        let anyUp = s.slots.contains { switch $0 { case .idle, .busy: return true; default: return false } }
        guard !anyUp else { return [] }
        if s.reachable != false {
            s.reachable = false
            logger.warning("database unreachable: \(s.lastError); requests answer error until it is back")
        }
        let w = s.waiters
        s.waiters = []
        return w
    }

    private func fail(_ waiters: Deque<Waiter>) {
        for w in waiters {
            w.timer?.cancel()
            w.continuation.resume(throwing: BackendError.unavailable("database unreachable"))
        }
    }

    private func scheduleReconnect(_ index: Int, after delay: TimeAmount) {
        loop.scheduleTask(in: delay) { [self] in reconnect(index) }
    }

    private func reconnect(_ index: Int) {
        let go = state.withLockedValue { s -> Bool in
            guard !s.closed, case .down = s.slots[index] else { return false }
            s.slots[index] = .connecting
            return true
        }
        guard go else { return }
        threads.submit { [self] _ in
            do {
                let c = try driver.connect()
                let (waiter, closeNow) = state.withLockedValue { s -> (Waiter?, Bool) in
                    if s.closed { s.slots[index] = .down; return (nil, true) }
                    s.attempts[index] = 0
                    if s.reachable != true {
                        s.reachable = true
                        logger.info("database reachable")
                    }
                    if let w = s.waiters.popFirst() { s.slots[index] = .busy; return (w, false) }
                    s.slots[index] = .idle(c)
                    return (nil, false)
                }
                if closeNow { driver.close(c) }
                if let waiter { waiter.timer?.cancel(); waiter.continuation.resume(returning: (index, c)) }
            } catch {
                let (failed, attempt) = state.withLockedValue { s -> (Deque<Waiter>, Int) in
                    s.slots[index] = .down
                    s.lastError = "\(error)"
                    s.attempts[index] += 1
                    return (noteDown(&s), s.attempts[index])
                }
                fail(failed)
                logger.debug("pool connection \(index): connect failed (attempt \(attempt)): \(error)")
                scheduleReconnect(index, after: delay(attempt: attempt))
            }
        }
    }

    /// Capped exponential backoff with +/- 20 % jitter.
    func delay(attempt: Int) -> TimeAmount {
        let base = min(Double(options.reconnectMax.nanoseconds),
                       Double(options.reconnectInitial.nanoseconds) * Double(1 << min(max(attempt - 1, 0), 30)))
        let spread = base * 0.2 * (2 * Double.random(in: 0..<1) - 1)
        return .nanoseconds(Int64(max(Double(options.reconnectInitial.nanoseconds), min(Double(options.reconnectMax.nanoseconds), base + spread))))
    }

    /// Pings each idle connection; one that fails is discarded and reconnected.
    private func pingIdle() {
        let taken = state.withLockedValue { s -> [(Int, Connection)] in
            var out: [(Int, Connection)] = []
            for (i, slot) in s.slots.enumerated() {
                if case .idle(let c) = slot { s.slots[i] = .busy; out.append((i, c)) }
            }
            return out
        }
        for (i, c) in taken {
            threads.submit { [self] _ in
                do {
                    try driver.ping(c)
                    release(i, c)
                } catch {
                    discard(i, c, error as? BackendError ?? .connectionLost("\(error)"))
                }
            }
        }
    }
}
