import MQTTCodec
import NIOCore

extension MQTTConnectionHandler {
    /// Packets after CONNACK.
    func handle(_ packet: Packet) {
        guard let session else { return }
        switch packet {
        case .publish(let p):
            handlePublish(p, session: session)
        case .puback(let a) where session.outbound.fit(.puback, a.packetId) == .breaksFlow,
             .pubrec(let a) where session.outbound.fit(.pubrec, a.packetId) == .breaksFlow,
             .pubcomp(let a) where session.outbound.fit(.pubcomp, a.packetId) == .breaksFlow:
            protocolError(.protocolError, "\(packet.type) for packet id \(a.packetId) breaks its QoS flow")
        case .puback(let a):
            if let e = session.outbound.remove(a.packetId) {
                hookAcked(e.delivery, packetId: a.packetId)
                session.forget(e.delivery)
                session.drainQueue(ctx: ctx)
            }
        case .pubrec(let a):
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
        case .pubrel(let a):
            let known = session.awaitingRel.remove(a.packetId) != nil
            // PUBCOMP frees the packet id for the client: it waits until the store forgot it,
            // or a reuse after a crash would be taken for a resend and dropped.
            var commit: EventLoopFuture<Void>?
            if known, session.persistent.load(ordering: .relaxed), let store = broker.store {
                let promise = eventLoop.makePromise(of: Void.self)
                store.submit([.rel(clientId: session.clientId, packetId: a.packetId)], promise: promise)
                commit = promise.futureResult
            }
            queueAck(.pubcomp(PubAckPacket(packetId: a.packetId, reasonCode: known || version != .v5 ? .success : .packetIdentifierNotFound)),
                     after: commit)
        case .pubcomp(let a):
            if let e = session.outbound.remove(a.packetId) {
                hookAcked(e.delivery, packetId: a.packetId)
                session.forget(e.delivery)
                session.drainQueue(ctx: ctx)
            }
        case .subscribe(let s):
            handleSubscribe(s, session: session)
        case .unsubscribe(let u):
            handleUnsubscribe(u, session: session)
        case .pingreq:
            send(.pingresp)
        case .disconnect(let d):
            handleDisconnect(d, session: session)
        case .connect:
            protocolError(.protocolError, "second CONNECT")
        case .auth:
            protocolError(.protocolError, "AUTH without an authentication method")
        case .connack, .suback, .unsuback, .pingresp:
            protocolError(.protocolError, "\(packet.type) is sent by servers only")
        }
    }

    private func handleDisconnect(_ d: DisconnectPacket, session: Session) {
        if version == .v5, let e = d.properties.sessionExpiryInterval {
            if sessionExpiryAtConnect == 0 && e != 0 {
                protocolError(.protocolError, "session expiry set on DISCONNECT after 0 on CONNECT")
                return
            }
            session.expiryInterval = min(e, config.maxSessionExpiryInterval)
        }
        closeKind = d.reasonCode == .disconnectWithWillMessage ? .withWill : .normal
        close()
    }

    // MARK: PUBLISH

    private func handlePublish(_ p: PublishPacket, session: Session) {
        let m = config
        if Int(p.qos.rawValue) > m.maxQoS { return protocolError(.qosNotSupported, "QoS \(p.qos.rawValue) above max_qos") }
        if p.retain && !m.retainAvailable { return protocolError(.retainNotSupported, "retain is not available") }
        var aliased = p.topic
        if version == .v5 {
            if !p.properties.subscriptionIdentifiers.isEmpty {
                return protocolError(.protocolError, "subscription identifier in a client PUBLISH")
            }
            if let alias = p.properties.topicAlias {
                guard alias != 0, Int(alias) <= m.maxTopicAlias else {
                    return protocolError(.topicAliasInvalid, "topic alias \(alias) outside 1...\(m.maxTopicAlias)")
                }
                if aliased.isEmpty {
                    guard let t = inboundAliases[alias] else {
                        return protocolError(.protocolError, "topic alias \(alias) was never set")
                    }
                    aliased = t
                } else {
                    inboundAliases[alias] = aliased
                }
            }
        }
        let topic = aliased
        if let bad = checkTopicName(topic) {
            if p.qos == .atMostOnce || version != .v5 { return protocolError(bad, "topic exceeds max_topic_length or max_topic_levels") }
            return ackPublish(p, reason: bad)
        }
        if topic.hasPrefix("$SYS/") || topic == "$SYS" {
            // Only the broker publishes under $SYS.
            ctx.stats.messagesDropped += 1
            if version != .v5 || p.qos == .atMostOnce { return ackPublish(p, reason: .success) }
            return ackPublish(p, reason: .notAuthorized)
        }
        if p.qos == .exactlyOnce, let id = p.packetId {
            if session.awaitingRel.contains(id) {
                // A resend of a message already routed: acknowledge, do not route again.
                return queueAck(.pubrec(PubAckPacket(packetId: id)), after: nil)
            }
            if version == .v5 && session.awaitingRel.count >= m.receiveMaximum {
                return protocolError(.receiveMaximumExceeded, "more than receive_maximum QoS 2 messages awaiting PUBREL")
            }
            if version != .v5 && session.awaitingRel.count >= m.maxAwaitingRel {
                logger.warning("max_awaiting_rel reached, dropping QoS 2 message")
                ctx.stats.messagesDropped += 1
                return queueAck(.pubrec(PubAckPacket(packetId: id)), after: nil)
            }
        }

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
        let message = Message(topic: topic, payload: p.payload, qos: p.qos, retain: p.retain, properties: props,
                              expiryInterval: expiry, origin: clientId, v5Wire: version == .v5, now: eventLoop.now,
                              allocator: context!.channel.allocator)
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
            let promise = eventLoop.makePromise(of: Void.self)
            store.submit(ops, promise: p.qos == .atMostOnce ? nil : promise)
            if p.qos == .atMostOnce { promise.succeed(()) } else { commit = promise.futureResult }
        }
        ackPublish(p, reason: n == 0 && version == .v5 ? .noMatchingSubscribers : .success, after: commit)
    }

    private func ackPublish(_ p: PublishPacket, reason: ReasonCode, after commit: EventLoopFuture<Void>? = nil) {
        guard let id = p.packetId else { return }
        let ack = PubAckPacket(packetId: id, reasonCode: version == .v5 ? reason : .success)
        queueAck(p.qos == .atLeastOnce ? .puback(ack) : .pubrec(ack), after: commit)
    }

    // MARK: SUBSCRIBE / UNSUBSCRIBE

    private func handleSubscribe(_ s: SubscribePacket, session: Session) {
        hookSubscribe(s)
        let topics: [String?] = s.subscriptions.map { ParsedFilter.parse($0.filter)?.filter }
        withACL(.subscribe, topics) { [self] allowed in
            subscribeAuthorized(s, session: session, allowed: allowed)
        }
    }

    private func subscribeAuthorized(_ s: SubscribePacket, session: Session, allowed: [Bool]) {
        let m = config
        let subId = s.properties.subscriptionIdentifiers.first
        var codes: [ReasonCode] = []
        var futures: [EventLoopFuture<Void>] = []
        var retainedFor: [(ParsedFilter, SubscriptionOptions)] = []
        var storeOps: [StoreOp] = []
        for (i, sub) in s.subscriptions.enumerated() {
            guard let parsed = ParsedFilter.parse(sub.filter),
                  parsed.filter.utf8.count <= m.maxTopicLength,
                  Topic.levelCount(parsed.filter) <= m.maxTopicLevels else {
                codes.append(version == .v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            guard allowed[i] else {
                logger.log(s.packetId == 0 ? .info : .debug, "subscribe not authorized", metadata: ["mqtt.topic": "\(sub.filter)"])
                codes.append(version == .v5 ? .notAuthorized : .unspecifiedError)
                continue
            }
            if parsed.group != nil && sub.noLocal && version == .v5 {
                return protocolError(.protocolError, "No Local on a shared subscription")
            }
            if !m.wildcardSubscription && Topic.hasWildcard(parsed.filter) {
                codes.append(version == .v5 ? .wildcardSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            if !m.sharedSubscription && parsed.group != nil {
                codes.append(version == .v5 ? .sharedSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            let granted = QoS(rawValue: min(sub.qos.rawValue, UInt8(m.maxQoS)))!
            let opts = SubscriptionOptions(qos: granted, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished,
                                           retainHandling: sub.retainHandling, subscriptionIdentifier: subId)
            let existed = session.subscriptions.updateValue((parsed, opts), forKey: sub.filter) != nil
            storeOps.append(.subscribe(clientId: session.clientId, filter: sub.filter, options: opts))
            futures.append(broker.router.subscribe(session, parsed, opts, on: eventLoop))
            codes.append(ReasonCode(granted.rawValue))
            hookSubscribed(filter: sub.filter, qos: granted)
            if parsed.group == nil && (sub.retainHandling == .sendOnSubscribe || (sub.retainHandling == .sendIfNew && !existed)) {
                retainedFor.append((parsed, opts))
            }
        }
        // A persistent session's SUBACK waits for the subscription to be on disk: an
        // acknowledged subscription survives a crash like an acknowledged message.
        if !storeOps.isEmpty, session.persistent.load(ordering: .relaxed), let store = broker.store {
            let promise = eventLoop.makePromise(of: Void.self)
            store.submit(storeOps, promise: promise)
            futures.append(promise.futureResult)
        }
        let ack = Packet.suback(SubAckPacket(packetId: s.packetId, reasonCodes: codes))
        EventLoopFuture.andAllComplete(futures, on: eventLoop).whenComplete { [self] _ in
            guard state == .connected, self.session === session else { return }
            if s.packetId != 0 { send(ack) }  // 0: static subscriptions (Auth/StaticSubscriptions.swift)
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

    private func handleUnsubscribe(_ u: UnsubscribePacket, session: Session) {
        var codes: [ReasonCode] = []
        var futures: [EventLoopFuture<Void>] = []
        hookUnsubscribe(u.filters)
        for f in u.filters {
            if let (parsed, _) = session.subscriptions.removeValue(forKey: f) {
                hookUnsubscribed(filter: f)
                session.record(.unsubscribe(clientId: session.clientId, filter: f))
                futures.append(broker.router.unsubscribe(session, parsed, on: eventLoop))
                codes.append(.success)
            } else {
                codes.append(.noSubscriptionExisted)
            }
        }
        let ack = Packet.unsuback(UnsubAckPacket(packetId: u.packetId, reasonCodes: version == .v5 ? codes : []))
        EventLoopFuture.andAllComplete(futures, on: eventLoop).whenComplete { [self] _ in
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
        guard let context else { return }
        let msg = d.message
        ctx.stats.messagesSent += 1
        hookDelivered(d)
        ctx.stats.packetsSent += 1
        if d.qos == .atMostOnce && !d.retainFlag && d.subscriptionIds.isEmpty && clientTopicAliasMax == 0
            && msg.wireUsable(for: version, now: now) {
            if msg.wire.readableBytes > clientMaxPacketSize { return dropOversize(d, packetId) }
            write(msg.wire)
            return
        }
        var props = Properties()
        var topic = msg.topic
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
        if version == .v5 && clientTopicAliasMax > 0 {
            if let alias = outboundAliases[topic] {
                topic = ""
                packet.topic = ""
                packet.properties.items.append(.topicAlias(alias))
            } else if Int(nextOutboundAlias) <= clientTopicAliasMax {
                outboundAliases[topic] = nextOutboundAlias
                packet.properties.items.append(.topicAlias(nextOutboundAlias))
                nextOutboundAlias += 1
            }
        }
        var header = context.channel.allocator.buffer(capacity: packet.headerLength(version: version))
        packet.encodeHeader(into: &header, version: version)
        write(header)
        if msg.payload.readableBytes > 0 { write(msg.payload) }
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
