import NIOConcurrencyHelpers
import NIOCore

/// Client id -> session, and a per-client-id chain that serialises everything which changes
/// who owns a session (connect, takeover, expiry), so concurrent CONNECTs with one client id
/// resolve in arrival order without holding a lock across event loop hops.
final class SessionRegistry: @unchecked Sendable {
    private let lock = NIOLock()
    private var sessions: [String: Session] = [:]
    private var chains: [String: EventLoopFuture<Void>] = [:]

    var count: Int { lock.withLock { sessions.count } }

    func get(_ clientId: String) -> Session? { lock.withLock { sessions[clientId] } }

    func put(_ session: Session) { lock.withLock { sessions[session.clientId] = session } }

    func remove(_ session: Session) {
        lock.withLock {
            if sessions[session.clientId] === session { sessions[session.clientId] = nil }
        }
    }

    func all() -> [Session] { lock.withLock { Array(sessions.values) } }

    /// Runs `body` after every earlier step for this client id has finished.
    func serialize(_ clientId: String, on loop: EventLoop, _ body: @escaping () -> EventLoopFuture<Void>) {
        let p = loop.makePromise(of: Void.self)
        let next = p.futureResult
        let prev: EventLoopFuture<Void>? = lock.withLock {
            let prev = chains[clientId]
            chains[clientId] = next
            return prev
        }
        // Attached outside the lock: a completed `prev` runs `body` immediately.
        if let prev {
            prev.whenComplete { _ in body().cascade(to: p) }
        } else {
            body().cascade(to: p)
        }
        next.whenComplete { [weak self] _ in
            guard let self else { return }
            self.lock.withLock {
                if self.chains[clientId] === next { self.chains[clientId] = nil }
            }
        }
    }
}
