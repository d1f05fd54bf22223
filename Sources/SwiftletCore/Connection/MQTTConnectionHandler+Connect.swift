import Foundation
import MQTTCodec
import NIOCore

extension MQTTConnectionHandler {
    /// Validates CONNECT, then hands the client id to the registry, which takes over or
    /// resumes a session and calls `attach`.
    func handleConnect(_ c: ConnectPacket) {
        if let a = context?.channel.remoteAddress {
            peerHost = a.ipAddress ?? peerHost
            peerPort = a.port ?? peerPort
        }
        version = c.protocolVersion
        cleanStart = c.cleanStart
        let m = config

        // Client identifier.
        var clientId = c.clientId
        var assigned = false
        if clientId.isEmpty {
            if version == .v3_1 || (version == .v3_1_1 && !c.cleanStart) {
                return refuse(.clientIdentifierNotValid, "empty client id")
            }
            clientId = "swiftlet-" + UUID().uuidString.lowercased()
            assigned = true
        }
        if clientId.utf8.count > m.maxClientIdLength {
            return refuse(.clientIdentifierNotValid, "client id longer than max_clientid_len")
        }
        self.clientId = clientId

        // 5.0 properties.
        let p = c.properties
        if version == .v5 {
            if p.authenticationMethod != nil {
                return refuse(.badAuthenticationMethod, "enhanced authentication is not supported")
            }
            if let rm = p.receiveMaximum { clientReceiveMaximum = Int(rm) }
            if let mps = p.maximumPacketSize { clientMaxPacketSize = Int(mps) }
            if let tam = p.topicAliasMaximum { clientTopicAliasMax = Int(tam) }
            if let rpi = p.requestProblemInformation { requestProblemInfo = rpi == 1 }
            wantsResponseInformation = p.requestResponseInformation == 1
        }
        // Will.
        if let w = c.will {
            if let reason = checkTopicName(w.topic) { return refuse(reason, "invalid will topic") }
            if Int(w.qos.rawValue) > m.maxQoS { return refuse(.qosNotSupported, "will QoS above max_qos") }
            if w.retain && !m.retainAvailable { return refuse(.retainNotSupported, "retain is not available") }
            if w.topic.hasPrefix("$SYS/") { return refuse(.notAuthorized, "will on a $SYS topic") }
            will = w
        }
        username = c.username
        // Session expiry.
        var expiry: UInt32
        if version == .v5 {
            expiry = min(p.sessionExpiryInterval ?? 0, m.maxSessionExpiryInterval)
        } else {
            expiry = c.cleanStart ? 0 : (m.sessionExpiryInterval == 0 ? .max : m.sessionExpiryInterval)
        }
        sessionExpiryAtConnect = expiry
        keepAlive = Int(c.keepAlive)
        if version == .v5 && m.serverKeepAlive > 0 { keepAlive = m.serverKeepAlive }

        state = .connecting
        armKeepAlive()
        let password = c.password.map { Array($0.readableBytesView) }
        let clientIdCopy = clientId
        broker.auth.authenticate(clientInfo, password: password, on: eventLoop).whenComplete { [self] result in
            guard state == .connecting, context != nil else { return }
            guard case .success(let verdict) = result, verdict.allowed else {
                let why = (try? result.get())?.reason ?? "authentication failed"
                refuse(c.username == nil ? .notAuthorized : .badUserNameOrPassword, why)
                return
            }
            superuser = verdict.superuser
            checkWill { [self] in
                broker.openSession(for: self, clientId: clientIdCopy, cleanStart: c.cleanStart, expiry: expiry) { [self] session, present in
                    self.attach(session, present: present, assigned: assigned ? clientIdCopy : nil,
                                requestedExpiry: p.sessionExpiryInterval)
                    self.applyStaticSubscriptions(verdict.subscriptions)
                }
            }
        }
    }

    /// A will the client may not publish is discarded (logged), as emqttd does at publish time.
    private func checkWill(then next: @escaping () -> Void) {
        guard let w = will, !superuser else { return next() }
        broker.auth.authorize(clientInfo, access: .publish, topic: w.topic, on: eventLoop).whenComplete { [self] result in
            guard state == .connecting else { return }
            if (try? result.get())?.allowed != true {
                logger.info("will topic not authorized; will discarded", metadata: ["mqtt.topic": "\(w.topic)"])
                will = nil
            }
            next()
        }
    }

    private func refuse(_ reason: ReasonCode, _ why: String) {
        logger.info("refusing CONNECT", metadata: ["reason": "\(reason) \(why)"])
        sendConnAckAndClose(reason)
    }

    /// Topic length and level limits; nil when acceptable.
    func checkTopicName(_ topic: String) -> ReasonCode? {
        if topic.utf8.count > config.maxTopicLength || Topic.levelCount(topic) > config.maxTopicLevels {
            return .topicNameInvalid
        }
        return nil
    }

    /// The session is ours: CONNACK, then redelivery. Runs on this loop.
    func attach(_ session: Session, present: Bool, assigned: String?, requestedExpiry: UInt32?) {
        guard state == .connecting, context != nil else {
            // The client went away while its session was being prepared.
            session.connection = self
            broker.connectionClosed(self, session: session)
            return
        }
        self.session = session
        session.connection = self
        session.online.store(true, ordering: .relaxed)
        session.protocolVersion = version
        session.expiryInterval = sessionExpiryAtConnect
        session.persistent.store(broker.store != nil && sessionExpiryAtConnect > 0, ordering: .relaxed)
        session.record(.session(clientId: session.clientId, expiry: sessionExpiryAtConnect, version: version.rawValue))
        session.outbound.window = max(1, min(config.maxInflight, clientReceiveMaximum))
        state = .connected
        wasCounted = true
        let n = broker.clientsConnected.wrappingIncrementThenLoad(ordering: .relaxed)
        var mx = broker.clientsMax.load(ordering: .relaxed)
        while n > mx, !broker.clientsMax.compareExchange(expected: mx, desired: n, ordering: .relaxed).exchanged {
            mx = broker.clientsMax.load(ordering: .relaxed)
        }

        var props = Properties()
        if version == .v5 {
            let m = config
            if let assigned { props.items.append(.assignedClientIdentifier(assigned)) }
            if let r = requestedExpiry, r != sessionExpiryAtConnect { props.items.append(.sessionExpiryInterval(sessionExpiryAtConnect)) }
            if m.receiveMaximum != 65_535 { props.items.append(.receiveMaximum(UInt16(m.receiveMaximum))) }
            if m.maxQoS < 2 { props.items.append(.maximumQoS(UInt8(m.maxQoS))) }
            if !m.retainAvailable { props.items.append(.retainAvailable(0)) }
            props.items.append(.maximumPacketSize(UInt32(m.maxPacketSize)))
            props.items.append(.topicAliasMaximum(UInt16(m.maxTopicAlias)))
            if !m.wildcardSubscription { props.items.append(.wildcardSubscriptionAvailable(0)) }
            if !m.sharedSubscription { props.items.append(.sharedSubscriptionAvailable(0)) }
            if m.serverKeepAlive > 0 { props.items.append(.serverKeepAlive(UInt16(m.serverKeepAlive))) }
        }
        if version == .v5, wantsResponseInformation {
            props.items.append(.responseInformation("swiftlet/response/\(clientId)"))
        }
        send(.connack(ConnAckPacket(sessionPresent: present, reasonCode: .success, properties: props)))
        logger.debug("client connected", metadata: ["mqtt.version": "\(version)", "session.present": "\(present)"])
        armKeepAlive()
        startRetryTimer()
        broker.publishClientEvent(connected: self)
        hookConnected(keepAlive: keepAlive)
        if present { session.redeliver(ctx: ctx) }
        resumePending()
    }
}
