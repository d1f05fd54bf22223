import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

/// What ctl shows of one connected client, read on the connection's loop.
struct ClientSnapshot {
    var clientId: String
    var username: String?
    var peer: String
    var protocolLevel: UInt8
    var cleanStart: Bool
    var keepAlive: Int
    var listener: String
    /// The client certificate's CN and subject DN (TLS listeners with `verify`).
    var certCommonName: String?
    var certSubject: String?
    var subscriptions: Int
    var inflight: Int
    var queued: Int

    /// Read on the connection's loop.
    init(_ c: MQTTConnectionHandler, session s: Session?) {
        clientId = c.clientId
        username = c.username
        peer = "\(c.peerHost):\(c.peerPort)"
        protocolLevel = c.version.rawValue
        cleanStart = c.cleanStart
        keepAlive = c.keepAlive
        listener = c.listenerName
        certCommonName = c.connectionPeer?.commonName
        certSubject = c.connectionPeer?.subject
        subscriptions = s?.subscriptions.count ?? 0
        inflight = s?.outbound.inflightCount ?? 0
        queued = s?.outbound.queue.count ?? 0
    }

    var json: [String: Any] {
        ["clientid": clientId, "username": username ?? NSNull(), "peer": peer, "protocol": Int(protocolLevel),
         "clean_start": cleanStart, "keepalive": keepAlive, "listener": listener, "subscriptions": subscriptions,
         "inflight": inflight, "queued": queued, "cert_common_name": certCommonName ?? NSNull(),
         "cert_subject": certSubject ?? NSNull()]
    }
}

/// What ctl shows of one session, read on the session's home loop.
struct SessionSnapshot {
    var clientId: String
    var connected: Bool
    var protocolLevel: UInt8
    var expiry: UInt32
    var persistent: Bool
    var subscriptions: [(filter: String, options: SubscriptionOptions)]
    var inflight: Int
    var queued: Int
    var awaitingRel: Int
    /// Seconds since the connection closed (nil while connected).
    var offlineFor: Int?

    var expiryText: String { expiry == .max ? "never" : "\(expiry)" }

    var json: [String: Any] {
        ["clientid": clientId, "connected": connected, "protocol": Int(protocolLevel),
         "expiry_interval": expiry == .max ? NSNull() : Int(expiry) as Any, "persistent": persistent,
         "subscriptions": subscriptions.count, "inflight": inflight, "queued": queued, "awaiting_rel": awaitingRel,
         "offline_seconds": offlineFor.map { $0 as Any } ?? NSNull()]
    }
}

extension SubscriptionOptions {
    var json: [String: Any] {
        ["qos": Int(qos.rawValue), "no_local": noLocal, "retain_as_published": retainAsPublished,
         "retain_handling": Int(retainHandling.rawValue),
         "subscription_identifier": subscriptionIdentifier.map { $0 as Any } ?? NSNull()]
    }
}

extension Broker {
    /// Connected clients, each read on its own loop (one task per loop).
    func clientSnapshots() -> EventLoopFuture<[ClientSnapshot]> {
        let futures = onConnectionLoops { list -> [ClientSnapshot] in
            list.compactMap { c in
                guard c.state == .connected else { return nil }
                return ClientSnapshot(c, session: c.session)
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: group.next()).map { parts in
            parts.flatMap { $0 }.sorted { $0.clientId < $1.clientId }
        }
    }

    /// `body` on each loop with the connections living there (one task per loop).
    func onConnectionLoops<T>(_ body: @escaping ([MQTTConnectionHandler]) -> T) -> [EventLoopFuture<T>] {
        let conns = connectionsLock.withLock { Array(connections.values) }
        var byLoop: [Int: [MQTTConnectionHandler]] = [:]
        for c in conns { byLoop[c.ctx.index, default: []].append(c) }
        return byLoop.map { index, list in loops[index].eventLoop.submit { body(list) } }
    }

    /// Runs `body` for each session on its home loop (one task per loop). A session that
    /// moved to another loop meanwhile (takeover) is retried there; one that ended is skipped.
    func onSessionLoops<T>(_ sessions: [Session], rounds: Int = 4,
                           _ body: @escaping (Session, LoopContext) -> T?) -> EventLoopFuture<[T]> {
        let el = group.next()
        if sessions.isEmpty { return el.makeSucceededFuture([]) }
        var byLoop: [Int: [Session]] = [:]
        for s in sessions { byLoop[s.homeLoop.load(ordering: .relaxed), default: []].append(s) }
        let futures = byLoop.map { index, list in
            let ctx = loops[index]
            return ctx.eventLoop.submit { () -> ([T], [Session]) in
                var out: [T] = []
                var moved: [Session] = []
                for s in list {
                    if s.homeLoop.load(ordering: .relaxed) != ctx.index { moved.append(s); continue }
                    if s.terminated { continue }
                    if let v = body(s, ctx) { out.append(v) }
                }
                return (out, moved)
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: el).flatMap { parts in
            let done = parts.flatMap { $0.0 }
            let moved = parts.flatMap { $0.1 }
            guard !moved.isEmpty, rounds > 1 else { return el.makeSucceededFuture(done) }
            return self.onSessionLoops(moved, rounds: rounds - 1, body).map { done + $0 }
        }
    }

    /// `body` on the home loop of `clientId`'s session; nil when there is no such session.
    func onSessionLoop<T>(_ clientId: String, _ body: @escaping (Session, LoopContext) -> T?) -> EventLoopFuture<T?> {
        guard let s = registry.get(clientId) else { return group.next().makeSucceededFuture(nil) }
        return onSessionLoops([s], body).map { $0.first }
    }

    static func sessionSnapshot(_ s: Session, ctx: LoopContext) -> SessionSnapshot {
        let offline = s.connection == nil ? s.disconnectedAt.map { Int((ctx.eventLoop.now - $0).nanoseconds / 1_000_000_000) } : nil
        return SessionSnapshot(clientId: s.clientId, connected: s.connection != nil, protocolLevel: s.protocolVersion.rawValue,
                               expiry: s.expiryInterval, persistent: s.persistent.load(ordering: .relaxed),
                               subscriptions: s.subscriptions.map { (filter: $0.key, options: $0.value.1) }.sorted { $0.filter < $1.filter },
                               inflight: s.outbound.inflightCount, queued: s.outbound.queue.count,
                               awaitingRel: s.awaitingRel.count, offlineFor: offline)
    }

    func sessionSnapshots() -> EventLoopFuture<[SessionSnapshot]> {
        onSessionLoops(registry.all()) { s, ctx in Self.sessionSnapshot(s, ctx: ctx) }
            .map { $0.sorted { $0.clientId < $1.clientId } }
    }
}
