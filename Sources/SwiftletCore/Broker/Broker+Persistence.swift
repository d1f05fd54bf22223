import SwiftletStore
import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

extension Broker {
    /// Keeps a client's retained message (bounded) and records it durably.
    func retain(_ message: Message, ops: inout [StoreOp]?, ctx: LoopContext) {
        if retained.set(message) {
            if message.payload.readableBytes == 0 {
                ops?.append(.unretain(topic: message.topic))
            } else {
                ops?.append(.retain(message))
            }
        } else {
            ctx.stats.messagesDropped += 1
            logger.warning("retained store full (max_retained_messages / max_retained_bytes); message not retained",
                           metadata: ["mqtt.topic": "\(message.topic)"])
        }
    }

    /// Rebuilds retained messages and persistent sessions from the store, accounting for the
    /// time the broker was down.
    func restore(_ snap: StoreSnapshot) async throws {
        for ctx in loops { ctx.setStoreIdBase(snap.maxMessageId) }
        for m in snap.retained { retained.set(m) }
        let nowWall = StoreSchema.nowMs()
        var restored = 0
        var expired = 0
        // Wills due while the broker was down go out once every session is back, so that
        // every persistent subscriber gets them whatever the order of restoring.
        var dueWills: [(Will, String, LoopContext)] = []
        for (i, rec) in snap.sessions.enumerated() {
            let ctx = loops[i % loops.count]
            let downSince = rec.disconnectedAt ?? snap.lastAlive ?? nowWall
            let elapsedMs = max(0, nowWall - downSince)
            try await ctx.eventLoop.flatSubmit { [self] () -> EventLoopFuture<Void> in
                let version = ProtocolVersion(rawValue: rec.version) ?? .v3_1_1
                let s = Session(clientId: rec.clientId, loopIndex: ctx.index, version: version, expiry: rec.expiry,
                                    limits: connectionPolicy.mqtt, store: store)
                s.persistent.store(true, ordering: .relaxed)
                let now = ctx.eventLoop.now
                s.disconnectedAt = now - .milliseconds(elapsedMs)
                let remainingMs = rec.expiry == .max ? Int64.max : Int64(rec.expiry) * 1000 - elapsedMs
                // A will whose time came while the broker was down is published now.
                if let w = rec.will {
                    let dueIn = rec.willAt - nowWall
                    if dueIn <= 0 || remainingMs <= 0 {
                        dueWills.append((w, rec.clientId, ctx))
                    } else {
                        s.pendingWill = (w, nil)
                        s.willTask = ctx.eventLoop.scheduleTask(in: .milliseconds(min(dueIn, remainingMs))) { [weak s, self] in
                            guard let s, let pw = s.pendingWill, s.connection == nil else { return }
                            s.pendingWill = nil
                            self.publishWill(pw.will, clientId: s.clientId, ctx: self.loops[s.homeLoop.load(ordering: .relaxed)])
                            s.record(.willDone(clientId: s.clientId))
                        }
                    }
                }
                if remainingMs <= 0 {
                    expired += 1
                    store?.submit(.sessionGone(clientId: rec.clientId))
                    return ctx.eventLoop.makeSucceededVoidFuture()
                }
                s.awaitingRel = Set(rec.awaitingRel)
                for m in rec.messages {
                    let d = Delivery(session: s, message: m.message, qos: m.qos, retainFlag: m.retainFlag,
                                     subscriptionIds: m.subscriptionIds, stored: true)
                    s.outbound.restore(d, packetId: m.state == 0 ? nil : m.packetId, released: m.state == 2, now: now)
                }
                var filters: [(ParsedFilter, SubscriptionOptions)] = []
                for (filter, opts) in rec.subscriptions {
                    guard let parsed = ParsedFilter.parse(filter) else { continue }
                    s.subscriptions[filter] = (parsed, opts)
                    filters.append((parsed, opts))
                }
                let subscribed = router.subscribe(s, filters, on: ctx.eventLoop)
                registry.put(s)
                restored += 1
                if remainingMs != .max {
                    s.expiryTask = ctx.eventLoop.scheduleTask(in: .milliseconds(remainingMs)) { [weak s, self] in
                        guard let s else { return }
                        self.expire(s)
                    }
                }
                return subscribed
            }.get()
        }
        for (w, clientId, ctx) in dueWills {
            try await ctx.eventLoop.submit { [self] in
                publishWill(w, clientId: clientId, ctx: ctx)
                store?.submit(.willDone(clientId: clientId))
            }.get()
        }
        if !snap.sessions.isEmpty {
            logger.info("sessions restored", metadata: ["store.restored": "\(restored)", "store.expired_while_down": "\(expired)"])
        }
    }
}
