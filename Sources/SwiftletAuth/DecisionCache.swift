import Atomics
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// The broker's cache of auth and ACL answers (design rule 4): bounded LRU, separate TTLs for
/// allow and deny, identical concurrent lookups collapsed into one provider request, and
/// invalidation of everything, one client id or one username.
///
/// Shared by all loops behind one lock; touched once per CONNECT and on per-connection ACL
/// cache misses, never per message (connections keep their own ACL cache, invalidated through
/// `generation`).
public final class DecisionCache<Value: Sendable>: @unchecked Sendable {
    /// Strings compare by their bytes (`UTF8Key`): a client id, username or topic that is
    /// only canonically equal to a cached one is another question.
    public struct Key: Hashable, Sendable {
        public var kind: UInt8
        public var clientId: UTF8Key
        public var username: UTF8Key
        public var detail: UTF8Key
        public init(kind: UInt8, clientId: String, username: String, detail: String) {
            self.kind = kind
            self.clientId = UTF8Key(clientId)
            self.username = UTF8Key(username)
            self.detail = UTF8Key(detail)
        }
    }

    private final class Entry {
        let key: Key
        var value: Value
        var expires: NIODeadline
        var prev: Entry?
        var next: Entry?
        init(key: Key, value: Value, expires: NIODeadline) {
            self.key = key
            self.value = value
            self.expires = expires
        }
    }

    private let lock = NIOLock()
    private var map: [Key: Entry] = [:]
    private var head: Entry?
    private var tail: Entry?
    private var inflight: [Key: EventLoopFuture<Value>] = [:]
    public let capacity: Int
    /// Bumped on every invalidation; connections compare it to drop their own caches.
    public let generation = ManagedAtomic<UInt64>(0)

    public private(set) var hits = 0
    public private(set) var misses = 0
    public private(set) var collapsed = 0
    public private(set) var evictions = 0

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public var count: Int { lock.withLock { map.count } }

    public func get(_ key: Key, now: NIODeadline) -> Value? {
        lock.withLock {
            guard let e = map[key] else { misses += 1; return nil }
            if e.expires <= now {
                unlink(e)
                map[key] = nil
                misses += 1
                return nil
            }
            unlink(e)
            pushFront(e)
            hits += 1
            return e.value
        }
    }

    public func put(_ key: Key, _ value: Value, ttl: TimeAmount, now: NIODeadline) {
        guard ttl > .zero else { return }
        lock.withLock {
            if let e = map[key] {
                e.value = value
                e.expires = now + ttl
                unlink(e)
                pushFront(e)
                return
            }
            let e = Entry(key: key, value: value, expires: now + ttl)
            map[key] = e
            pushFront(e)
            while map.count > capacity, let t = tail {
                unlink(t)
                map[t.key] = nil
                evictions += 1
            }
        }
    }

    /// Returns the cached value (after telling `hit`), or joins an identical lookup in flight,
    /// or starts `load`.
    public func lookup(_ key: Key, now: NIODeadline, on loop: EventLoop, hit: (Value) -> Void = { _ in },
                       load: () -> EventLoopFuture<(Value, TimeAmount)>) -> EventLoopFuture<Value> {
        if let v = get(key, now: now) {
            hit(v)
            return loop.makeSucceededFuture(v)
        }
        let (existing, promise): (EventLoopFuture<Value>?, EventLoopPromise<Value>?) = lock.withLock {
            if let f = inflight[key] {
                collapsed += 1
                return (f, nil)
            }
            let p = loop.makePromise(of: Value.self)
            inflight[key] = p.futureResult
            return (nil, p)
        }
        if let existing { return existing.hop(to: loop) }
        let gen = generation.load(ordering: .acquiring)
        load().whenComplete { [self] result in
            lock.withLock { inflight[key] = nil }
            switch result {
            case .success(let (value, ttl)):
                // Not cached if an invalidation happened while the lookup ran.
                if generation.load(ordering: .acquiring) == gen { put(key, value, ttl: ttl, now: loop.now) }
                promise!.succeed(value)
            case .failure(let e):
                promise!.fail(e)
            }
        }
        return promise!.futureResult
    }

    public enum Scope: Sendable {
        case all
        case clientId(String)
        case username(String)
    }

    /// Drops matching entries; returns how many.
    @discardableResult
    public func invalidate(_ scope: Scope) -> Int {
        generation.wrappingIncrement(ordering: .releasing)
        return lock.withLock {
            let victims: [Entry]
            switch scope {
            case .all: victims = Array(map.values)
            case .clientId(let c): victims = map.values.filter { $0.key.clientId == UTF8Key(c) }
            case .username(let u): victims = map.values.filter { $0.key.username == UTF8Key(u) }
            }
            for e in victims {
                unlink(e)
                map[e.key] = nil
            }
            return victims.count
        }
    }

    private func unlink(_ e: Entry) {
        if let p = e.prev { p.next = e.next } else { head = e.next }
        if let n = e.next { n.prev = e.prev } else { tail = e.prev }
        e.prev = nil
        e.next = nil
    }

    private func pushFront(_ e: Entry) {
        e.next = head
        head?.prev = e
        head = e
        if tail == nil { tail = e }
    }
}
