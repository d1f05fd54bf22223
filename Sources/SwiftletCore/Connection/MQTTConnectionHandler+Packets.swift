import MQTTProtocol
import SwiftletStore
import SwiftletRouting
import MQTTCodec
import NIOCore

extension MQTTConnectionHandler {
    /// One packet, through the state machine.
    func handle(_ packet: Packet) {
        // Only CONNECT reads the time (keep alive starts); other packets need no clock read.
        let now = state == .awaitingConnect ? eventLoop.now.uptimeNanoseconds : machine.lastActivity
        let action = session.map { machine.received(packet, now: now, session: $0) }
            ?? machine.received(packet, now: now, session: NoSession())
        if case .hold = action { return pending.append(packet) }
        execute(action)
    }

    /// PUBACK, PUBREC or PUBCOMP that fits its flow (or names no message in flight).
    func acknowledged(_ kind: OutboundState.Ack, _ a: PubAckPacket, session: Session) {
        switch kind {
        case .puback, .pubcomp:
            if let e = session.outbound.remove(a.packetId) {
                hookAcked(e.delivery, packetId: a.packetId)
                session.forget(e.delivery)
                session.drainQueue(ctx: ctx)
            }
        case .pubrec:
            if a.reasonCode.isFailure {
                if let e = session.outbound.failed(a.packetId) { session.forget(e.delivery) }
                session.drainQueue(ctx: ctx)
            } else if session.outbound.received(a.packetId, now: eventLoop.now) {
                if let e = session.outbound.inflight[a.packetId], e.delivery.stored {
                    session.record(.released(clientId: session.clientId, messageId: e.delivery.message.storeId))
                }
                sendPubRel(a.packetId)
            } else {
                send(.pubrel(PubAckPacket(packetId: a.packetId, reasonCode: version == .v5 ? .packetIdentifierNotFound : .success)))
            }
        }
    }

    /// PUBREL: the QoS 2 message is released; PUBCOMP once the store forgot it.
    func released(_ a: PubAckPacket, session: Session) {
        let known = session.awaitingRel.remove(a.packetId) != nil
        // PUBCOMP frees the packet id for the client: it waits until the store forgot it,
        // or a reuse after a crash would be taken for a resend and dropped.
        var commit: EventLoopFuture<Void>?
        if known, session.persistent.load(ordering: .relaxed), let store = broker.store {
            commit = store.submit([.rel(clientId: session.clientId, packetId: a.packetId)], on: eventLoop)
        }
        queueAck(.pubcomp(PubAckPacket(packetId: a.packetId, reasonCode: known || version != .v5 ? .success : .packetIdentifierNotFound)),
                 after: commit)
    }

    // MARK: PUBLISH

    /// A PUBLISH the state machine found valid, its alias resolved into `topic`.
    func publishValid(_ p: PublishPacket, topic: String, session: Session) {
        // A cached answer continues in place: the common case builds no closure.
        if let allowed = cachedACL(.publish, topic) {
            return publishChecked(p, topic: topic, session: session, allowed: allowed)
        }
        withACL(.publish, topic) { [self] allowed in
            publishChecked(p, topic: topic, session: session, allowed: allowed)
        }
    }

    /// After the ACL answered: drop, or route through the message.publish filter when a
    /// sidecar registered one.
    private func publishChecked(_ p: PublishPacket, topic: String, session: Session, allowed: Bool) {
        guard allowed else {
            logger.debug("publish not authorized", metadata: ["mqtt.topic": "\(topic)"])
            ctx.stats.messagesDropped += 1
            // 3.x has no negative acknowledgement: the message is acknowledged and dropped.
            return ackPublish(p, reason: .notAuthorized)
        }
        guard hooks.hasPublishFilter else { return publishAuthorized(p, topic: topic, session: session) }
        withPublishFilter(p, topic: topic) { [self] q, t in
            guard let q else {
                ctx.stats.messagesDropped += 1
                return ackPublish(p, reason: .success)
            }
            publishAuthorized(q, topic: t, session: session)
        }
    }

    private func publishAuthorized(_ p: PublishPacket, topic: String, session: Session) {
        var props = Properties()
        var expiry: UInt32?
        if version == .v5 && !p.properties.isEmpty {
            for item in p.properties.items {
                switch item {
                case .topicAlias, .subscriptionIdentifier: continue
                case .messageExpiryInterval(let e): if e > 0 { expiry = e }
                default: props.items.append(item)
                }
            }
        }
        // A plain QoS 0 PUBLISH is already what a subscriber of the same family gets: the
        // message may forward the received bytes (Message decides whether pinning is cheap).
        let received = p.qos == .atMostOnce && !p.retain && p.topic == topic && (version != .v5 || p.properties.isEmpty)
            ? p.received : nil
        let message = Message(topic: topic, payload: p.payload, qos: p.qos, retain: p.retain, properties: props,
                              expiryInterval: expiry, origin: clientId, v5Wire: version == .v5, now: eventLoop.now,
                              allocator: transport!.transportAllocator, received: received)
        ctx.stats.messagesReceived += 1
        hookPublish(message)
        let store = broker.store
        var ops: [StoreOp]? = store != nil && (p.qos != .atMostOnce || p.retain) ? [] : nil
        if ops != nil { message.storeId = ctx.allocateStoreId() }
        if p.retain { broker.retain(message, ops: &ops, ctx: ctx) }
        let n = ctx.route(message, ops: &ops)
        if p.qos == .exactlyOnce, let id = p.packetId {
            session.awaitingRel.insert(id)
            if session.persistent.load(ordering: .relaxed) { ops?.append(.awaitRel(clientId: clientId, packetId: id)) }
        }
        var commit: EventLoopFuture<Void>?
        if let store, let ops, !ops.isEmpty {
            if p.qos == .atMostOnce { store.submit(ops) } else { commit = store.submit(ops, on: eventLoop) }
        }
        ackPublish(p, reason: n == 0 && version == .v5 ? .noMatchingSubscribers : .success, after: commit)
    }

    func ackPublish(_ p: PublishPacket, reason: ReasonCode, after commit: EventLoopFuture<Void>? = nil) {
        guard let id = p.packetId else { return }
        let ack = PubAckPacket(packetId: id, reasonCode: version == .v5 ? reason : .success)
        queueAck(p.qos == .atLeastOnce ? .puback(ack) : .pubrec(ack), after: commit)
    }

    // MARK: SUBSCRIBE / UNSUBSCRIBE

    func handleSubscribe(_ s: SubscribePacket, session: Session) {
        hookSubscribe(s)
        let topics: [String?] = s.subscriptions.map { ParsedFilter.parse($0.filter)?.filter }
        withACL(.subscribe, topics) { [self] allowed in
            subscribeAuthorized(s, session: session, allowed: allowed)
        }
    }

    private func subscribeAuthorized(_ s: SubscribePacket, session: Session, allowed: [Bool]) {
        let subId = s.properties.subscriptionIdentifiers.first
        var codes: [ReasonCode] = []
        var futures: [EventLoopFuture<Void>] = []
        var retainedFor: [(ParsedFilter, SubscriptionOptions)] = []
        var grants: [(ParsedFilter, SubscriptionOptions)] = []
        grants.reserveCapacity(s.subscriptions.count)
        let persistent = session.persistent.load(ordering: .relaxed) && broker.store != nil
        var storeOps: [StoreOp] = []
        for (i, sub) in s.subscriptions.enumerated() {
            let parsed: ParsedFilter, opts: SubscriptionOptions
            switch machine.subscription(sub, parsed: ParsedFilter.parse(sub.filter), allowed: allowed[i], identifier: subId,
                                        held: session.subscriptions.count, replaces: session.subscriptions[sub.filter] != nil) {
            case .grant(let p, let o):
                (parsed, opts) = (p, o)
            case .refuse(let code, let why):
                logger.log(s.packetId == 0 ? .info : .debug, "subscription refused",
                           metadata: ["mqtt.topic": "\(sub.filter)", "reason": "\(why)"])
                codes.append(code)
                continue
            case .violation(let action):
                return execute(action)
            }
            let granted = opts.qos
            let existed = session.subscriptions.updateValue((parsed, opts), forKey: sub.filter) != nil
            if persistent { storeOps.append(.subscribe(clientId: session.clientId, filter: sub.filter, options: opts)) }
            grants.append((parsed, opts))
            codes.append(ReasonCode(granted.rawValue))
            hookSubscribed(filter: sub.filter, qos: granted)
            if parsed.group == nil && (sub.retainHandling == .sendOnSubscribe || (sub.retainHandling == .sendIfNew && !existed)) {
                retainedFor.append((parsed, opts))
            }
        }
        futures.append(broker.router.subscribe(session, grants, on: eventLoop))
        // A persistent session's SUBACK waits for the subscription to be on disk: an
        // acknowledged subscription survives a crash like an acknowledged message.
        if !storeOps.isEmpty, let store = broker.store {
            futures.append(store.submit(storeOps, on: eventLoop))
        }
        let ack = Packet.suback(SubAckPacket(packetId: s.packetId, reasonCodes: codes))
        EventLoopFuture.andAllComplete(futures, on: eventLoop).whenComplete { [self] _ in
            guard state == .connected, self.session === session else { return }
            if s.packetId != 0 { send(ack) }  // 0: static subscriptions (MQTTConnectionHandler+StaticSubscriptions.swift)
            let now = eventLoop.now
            for (f, o) in retainedFor {
                for msg in broker.retained.match(filter: f.filter, now: now) {
                    let d = Delivery(session: session, message: msg, qos: min(msg.qos, o.qos), retainFlag: true,
                                     subscriptionIds: o.subscriptionIdentifier.map { [$0] } ?? [])
                    session.deliver(d, ctx: ctx)
                }
            }
            flushIfDirty()
        }
    }

    func handleUnsubscribe(_ u: UnsubscribePacket, session: Session) {
        var codes: [ReasonCode] = []
        var removed: [ParsedFilter] = []
        hookUnsubscribe(u.filters)
        for f in u.filters {
            if let (parsed, _) = session.subscriptions.removeValue(forKey: f) {
                hookUnsubscribed(filter: f)
                session.record(.unsubscribe(clientId: session.clientId, filter: f))
                removed.append(parsed)
                codes.append(.success)
            } else {
                codes.append(.noSubscriptionExisted)
            }
        }
        let ack = Packet.unsuback(UnsubAckPacket(packetId: u.packetId, reasonCodes: version == .v5 ? codes : []))
        broker.router.unsubscribe(session, removed, on: eventLoop).whenComplete { [self] _ in
            guard state == .connected else { return }
            send(ack)
            flushIfDirty()
        }
    }

    // MARK: Deliveries

    func sendPubRel(_ id: UInt16) {
        send(.pubrel(PubAckPacket(packetId: id)))
    }

    /// Writes one delivery. QoS 0 plain deliveries share the message's encoded bytes;
    /// others write a fresh header followed by the shared payload slice.
    func sendPublish(_ d: Delivery, packetId: UInt16?, dup: Bool, now: NIODeadline) {
        guard transport != nil else { return }
        let msg = d.message
        ctx.stats.messagesSent += 1
        hookDelivered(d)
        ctx.stats.packetsSent += 1
        if d.qos == .atMostOnce && !d.retainFlag && d.subscriptionIds.isEmpty && machine.clientTopicAliasMax == 0
            && msg.wireUsable(for: version, now: now) {
            if msg.wire.readableBytes > clientMaxPacketSize { return dropOversize(d, packetId) }
            write(msg.wire)
            return
        }
        var props = Properties()
        let topic = msg.topic
        if version == .v5 {
            props = msg.properties
            if let r = msg.remainingExpiry(now: now) { props.items.append(.messageExpiryInterval(r)) }
            for id in d.subscriptionIds { props.items.append(.subscriptionIdentifier(id)) }
        }
        var packet = PublishPacket(dup: dup, qos: d.qos, retain: d.retainFlag, topic: topic, packetId: packetId,
                                   properties: props, payload: msg.payload)
        if packet.encodedLengthFor(version) > clientMaxPacketSize {
            return dropOversize(d, packetId)
        }
        if let (alias, isNew) = machine.outboundAlias(for: topic) {
            if !isNew { packet.topic = "" }
            packet.properties.items.append(.topicAlias(alias))
        }
        let version = self.version
        if msg.payload.readableBytes <= Self.inlinePayloadLimit {
            writeCoalesced { out in
                packet.encodeHeader(into: &out, version: version)
                var payload = msg.payload
                out.writeBuffer(&payload)
            }
            return
        }
        writeCoalesced { packet.encodeHeader(into: &$0, version: version) }
        write(msg.payload)
    }

    private func dropOversize(_ d: Delivery, _ packetId: UInt16?) {
        // Larger than the client's Maximum Packet Size: discarded for this client (MQTT-3.1.2-25).
        ctx.stats.messagesSent -= 1
        ctx.stats.packetsSent -= 1
        ctx.stats.messagesDropped += 1
        if let id = packetId, let s = session, let e = s.outbound.remove(id) { s.forget(e.delivery) }
    }
}

extension PublishPacket {
    func encodedLengthFor(_ version: ProtocolVersion) -> Int {
        let b = bodyLength(version: version)
        return 1 + MQTTString.varIntLength(b) + b
    }
}
