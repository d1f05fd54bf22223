import SwiftletStore
import SwiftletRouting
import Foundation
import MQTTCodec
import NIOCore

extension Broker {
    /// The usual CONNECT, on the connection's loop: no session for the client id and no
    /// step pending for it, so a new session is made and registered at once, without the
    /// registry's chain (a promise, a future and two callbacks per CONNECT). nil: call
    /// `openSession`. A CONNECT with the same id on another loop then finds this session and
    /// takes it over through the chain, on this loop, after the caller has attached it.
    func claimNewSession(for conn: MQTTConnectionHandler, clientId: String, expiry: UInt32) -> Session? {
        let home = conn.ctx
        guard home.eventLoop.inEventLoop else { return nil }
        return registry.claimNew(clientId) { newSession(for: conn, clientId: clientId, expiry: expiry) }
    }

    /// A new session at `conn`'s loop, with its limits (not yet registered).
    private func newSession(for conn: MQTTConnectionHandler, clientId: String, expiry: UInt32) -> Session {
        Session(clientId: clientId, loopIndex: conn.ctx.index, version: conn.version, expiry: expiry,
                limits: conn.config, store: store)
    }

    /// Takes over or resumes the session for `clientId`, serialised per client id, and
    /// calls `attach` on the connection's loop with the session and "session present".
    func openSession(for conn: MQTTConnectionHandler, clientId: String, cleanStart: Bool, expiry: UInt32,
                     attach: @escaping (Session, Bool) -> Void) {
        let home = conn.ctx
        registry.serialize(clientId, on: home.eventLoop) { [self] in
            let makeNew = { () -> Void in
                let s = self.newSession(for: conn, clientId: clientId, expiry: expiry)
                self.registry.put(s)
                attach(s, false)
            }
            guard let old = registry.get(clientId), !old.terminated else {
                // No session to take over (a step before this one ended it): made on the
                // connection's loop, at once when this step runs there.
                if home.eventLoop.inEventLoop {
                    makeNew()
                    return home.eventLoop.makeSucceededVoidFuture()
                }
                return home.eventLoop.submit(makeNew)
            }
            let oldCtx = loops[old.homeLoop.load(ordering: .relaxed)]
            return oldCtx.eventLoop.submit { () -> Session? in
                self.takeOver(old, cleanStart: cleanStart, newHome: home.index, ctx: oldCtx)
            }.flatMap { resumed in
                home.eventLoop.submit {
                    if let resumed { attach(resumed, true) } else { makeNew() }
                }
            }
        }
    }

    /// On the old session's loop: closes its connection and either ends the session (clean
    /// start, or a session that was to end with its connection: clean session / expiry 0)
    /// or hands it to `newHome` (returned).
    private func takeOver(_ old: Session, cleanStart: Bool, newHome: Int, ctx: LoopContext) -> Session? {
        // A session that lasts only as long as its network connection ends with it even when
        // the new connection asks to resume (MQTT-3.1.2-6, MQTT 5.0 3.1.2.11.2): no session present.
        let ends = cleanStart || old.expiryInterval == 0
        if let oldConn = old.connection {
            logger.info("session taken over", metadata: ["mqtt.client_id": "\(old.clientId)"])
            let will = oldConn.will
            oldConn.will = nil
            old.connection = nil
            oldConn.session = nil
            oldConn.takenOver()
            if let will, ends || Self.willDelay(will) == 0 {
                publishWill(will, clientId: old.clientId, ctx: ctx)
            }
        }
        old.online.store(false, ordering: .relaxed)
        let pending = old.pendingWill
        old.cancelTimers()
        old.pendingWill = nil
        if ends {
            if let pending { publishWill(pending.will, clientId: old.clientId, ctx: ctx) }
            terminate(old, ctx: ctx)
            return nil
        }
        old.homeLoop.store(newHome, ordering: .relaxed)
        return old
    }

    static func willDelay(_ w: Will) -> UInt32 { w.properties.willDelayInterval ?? 0 }

    /// The connection of `session` closed (on the session's loop).
    func connectionClosed(_ conn: MQTTConnectionHandler, session: Session) {
        let ctx = conn.ctx
        session.connection = nil
        session.online.store(false, ordering: .relaxed)
        session.disconnectedAt = ctx.eventLoop.now
        if conn.closeKind != .normal, conn.closeKind != .serverShutdown, let will = conn.will {
            let delay = Self.willDelay(will)
            if delay == 0 || session.expiryInterval == 0 {
                publishWill(will, clientId: session.clientId, ctx: ctx)
            } else {
                session.pendingWill = (will, conn.username)
                let wait = min(delay, session.expiryInterval)
                session.willTask = ctx.eventLoop.scheduleTask(in: .seconds(Int64(wait))) { [weak session, self] in
                    guard let session, let w = session.pendingWill, session.connection == nil else { return }
                    session.pendingWill = nil
                    self.publishWill(w.will, clientId: session.clientId, ctx: self.loops[session.homeLoop.load(ordering: .relaxed)])
                    session.record(.willDone(clientId: session.clientId))
                }
            }
        }
        conn.will = nil
        if session.expiryInterval > 0 {
            let nowWall = StoreSchema.nowMs()
            let w = session.pendingWill
            let willAt = nowWall + Int64(min(w.map { Self.willDelay($0.will) } ?? 0, session.expiryInterval)) * 1000
            session.record(.sessionOffline(clientId: session.clientId, at: nowWall, expiry: session.expiryInterval,
                                           will: w?.will, willAt: willAt))
        }
        if session.expiryInterval == 0 {
            terminate(session, ctx: ctx)
        } else if session.expiryInterval != .max {
            let expiry = session.expiryInterval
            session.expiryTask = ctx.eventLoop.scheduleTask(in: .seconds(Int64(expiry))) { [weak session, self] in
                guard let session else { return }
                self.expire(session)
            }
        }
    }

    /// Session expiry timer fired: end it unless it was resumed meanwhile.
    func expire(_ session: Session) {
        let loop = loops[session.homeLoop.load(ordering: .relaxed)].eventLoop
        registry.serialize(session.clientId, on: loop) { [self] in
            let ctx = loops[session.homeLoop.load(ordering: .relaxed)]
            return ctx.eventLoop.submit {
                guard session.connection == nil, !session.terminated,
                      let at = session.disconnectedAt,
                      ctx.eventLoop.now >= at + .seconds(Int64(session.expiryInterval)) - .milliseconds(50) else { return }
                self.logger.debug("session expired", metadata: ["mqtt.client_id": "\(session.clientId)"])
                if let w = session.pendingWill {
                    session.pendingWill = nil
                    self.publishWill(w.will, clientId: session.clientId, ctx: ctx)
                }
                self.terminate(session, ctx: ctx)
            }
        }
    }

    /// Ends a session: its subscriptions leave every router replica and the registry.
    func terminate(_ session: Session, ctx: LoopContext) {
        guard !session.terminated else { return }
        session.record(.sessionGone(clientId: session.clientId))
        session.persistent.store(false, ordering: .relaxed)
        session.terminated = true
        session.cancelTimers()
        _ = router.unsubscribe(session, session.subscriptions.values.map(\.0), on: ctx.eventLoop)
        session.subscriptions.removeAll()
        ctx.stats.messagesDropped += session.outbound.queue.count
        session.outbound.clear()
        registry.remove(session)
    }

    func publishWill(_ will: Will, clientId: String, ctx: LoopContext) {
        var props = Properties()
        var expiry: UInt32?
        for item in will.properties.items {
            switch item {
            case .willDelayInterval: continue
            case .messageExpiryInterval(let e): if e > 0 { expiry = e }
            default: props.items.append(item)
            }
        }
        let m = Message(topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, properties: props,
                        expiryInterval: expiry, origin: clientId, v5Wire: !props.isEmpty || expiry != nil,
                        now: ctx.eventLoop.now)
        logger.debug("publishing will", metadata: ["mqtt.client_id": "\(clientId)", "mqtt.topic": "\(will.topic)"])
        ctx.stats.messagesReceived += 1
        var ops: [StoreOp]? = store != nil && (m.qos != .atMostOnce || m.retain) ? [] : nil
        if ops != nil { m.storeId = ctx.allocateStoreId() }
        if m.retain { retain(m, ops: &ops, ctx: ctx) }
        ctx.route(m, ops: &ops)
        if let ops, !ops.isEmpty { store?.submit(ops) }
    }

    // MARK: Client events ($SYS/brokers/<node>/clients/<id>/connected|disconnected)

    func publishClientEvent(connected c: MQTTConnectionHandler) {
        // Built only when someone could receive it (every CONNECT pays for it otherwise).
        guard c.ctx.trie.hasSysSubscriptions else { return }
        var j = JSONObjectWriter()
        j.field("clean_start", c.cleanStart)
        j.field("clientid", c.clientId)
        j.field("connack", 0)
        j.field("ipaddress", c.peerHost)
        j.field("keepalive", c.keepAlive)
        j.field("protocol", Int(c.version.rawValue))
        j.field("ts", Int(Date().timeIntervalSince1970))
        j.field("username", c.username)
        publishEvent(c, "connected", j.finish())
    }

    func publishClientEvent(disconnected c: MQTTConnectionHandler) {
        guard c.ctx.trie.hasSysSubscriptions else { return }
        let reason: String
        switch c.closeKind {
        case .normal: reason = "normal"
        case .withWill: reason = "normal_with_will"
        case .abnormal: reason = "closed"
        case .takenOver: reason = "discarded"
        case .serverShutdown: reason = "shutdown"
        }
        var j = JSONObjectWriter()
        j.field("clientid", c.clientId)
        j.field("reason", reason)
        j.field("ts", Int(Date().timeIntervalSince1970))
        j.field("username", c.username)
        publishEvent(c, "disconnected", j.finish())
    }

    private func publishEvent(_ c: MQTTConnectionHandler, _ kind: String, _ payload: ByteBuffer) {
        let topic = "$SYS/brokers/\(config.nodeName)/clients/\(c.clientId)/\(kind)"
        let m = Message(topic: topic, payload: payload, qos: .atMostOnce, retain: false, now: c.eventLoop.now)
        c.ctx.route(m)
    }
}
