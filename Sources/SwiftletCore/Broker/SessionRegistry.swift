import NIOConcurrencyHelpers
import NIOCore
import MQTTCodec

/// Client id -> session, and a per-client-id chain that serialises everything which changes
/// who owns a session (connect, takeover, expiry), so concurrent CONNECTs with one client id
/// resolve in arrival order without holding a lock across event loop hops. Client ids compare
/// by their bytes (`UTF8Key`): two ids that are only canonically equal are two sessions.
final class SessionRegistry: @unchecked Sendable {
    private let lock = NIOLock()
    private var sessions: [UTF8Key: Session] = [:]
    private var chains: [UTF8Key: EventLoopFuture<Void>] = [:]

    var count: Int { lock.withLock { sessions.count } }

    func get(_ clientId: String) -> Session? { lock.withLock { sessions[UTF8Key(clientId)] } }

    func put(_ session: Session) { lock.withLock { sessions[UTF8Key(session.clientId)] = session } }

    func remove(_ session: Session) {
        lock.withLock {
            let key = UTF8Key(session.clientId)
            if sessions[key] === session { sessions[key] = nil }
        }
    }

    func all() -> [Session] { lock.withLock { Array(sessions.values) } }

    /// A new session for `clientId` (made by `make`, under the lock) when it has none that is
    /// live and no step is pending for it; nil otherwise, and nothing is made.
    func claimNew(_ clientId: String, _ make: () -> Session) -> Session? {
        let key = UTF8Key(clientId)
        return lock.withLock {
            guard chains[key] == nil else { return nil }
            if let s = sessions[key], !s.terminated { return nil }
            let s = make()
            sessions[key] = s
            return s
        }
    }

    /// Runs `body` after every earlier step for this client id has finished.
    func serialize(_ clientId: String, on loop: EventLoop, _ body: @escaping () -> EventLoopFuture<Void>) {
        let key = UTF8Key(clientId)
        let p = loop.makePromise(of: Void.self)
        let next = p.futureResult
        let prev: EventLoopFuture<Void>? = lock.withLock {
            let prev = chains[key]
            chains[key] = next
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
                if self.chains[key] === next { self.chains[key] = nil }
            }
        }
    }
}
