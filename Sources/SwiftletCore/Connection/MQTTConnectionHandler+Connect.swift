import MQTTProtocol
import Foundation
import MQTTCodec
import NIOCore
import SwiftletAuth

extension MQTTConnectionHandler {
    /// The state machine accepted the CONNECT (`machine.connectRequest`): the auth chain
    /// decides, the will is checked, then the registry takes over or resumes a session and
    /// calls `attach`.
    func authenticate(password: ByteBuffer?) {
        guard let sent = machine.connectRequest else { return }
        // The peer's address was read when the connection was accepted; a PROXY protocol
        // header names the client behind the load balancer instead. A channel attached before
        // it was connected (`Broker.attachConnection`) has its address only now.
        if let host = connectionPeer?.proxiedHost {
            peerHost = host
            peerPort = connectionPeer?.proxiedPort ?? 0
        } else if peerHost == Self.unknownHost, let a = transport?.transportRemoteAddress {
            peerHost = a.hostText ?? peerHost
            peerPort = a.port ?? peerPort
        }
        guard let request = applyCertificateIdentity(to: sent) else { return }
        if let ban = broker.banned.match(clientId: request.clientId, username: request.username, host: peerHost) {
            // Logged (rate-limited) and counted with the CONNACK refusal.
            logger.debug("client banned", metadata: ["banned.as": "\(ban.kind.rawValue)", "banned.who": "\(ban.who)"])
            return execute(machine.banned())
        }
        let password = password.map { Array($0.readableBytesView) }
        let client = clientInfo
        // The usual anonymous CONNECT is decided here and now: no future, no callback.
        if let verdict = broker.auth.decidedAtOnce(client, password: password) {
            return authenticated(verdict, request)
        }
        broker.auth.authenticate(client, password: password, on: eventLoop).whenComplete { [self] result in
            guard state == .connecting, transport != nil else { return }
            authenticated(try? result.get(), request)
        }
    }

    /// The chain's answer (nil: it failed): CONNACK refusal, or the will check and the session.
    private func authenticated(_ verdict: AuthnResult?, _ request: ConnectionStateMachine.ConnectRequest) {
        let refusal = machine.authenticated(verdict?.allowed == true, why: verdict?.reason ?? "authentication failed")
        guard case .none = refusal, let verdict else { return execute(refusal) }
        superuser = verdict.superuser
        guard will != nil, !superuser else {
            return openSession(request, subscriptions: verdict.subscriptions)
        }
        checkWill { [self] in openSession(request, subscriptions: verdict.subscriptions) }
    }

    /// A CONNECT that finds no session and nothing pending for its client id gets a new one
    /// at once (`Broker.claimNewSession`); any other goes through the registry's chain.
    private func openSession(_ request: ConnectionStateMachine.ConnectRequest, subscriptions: [StaticSubscription]) {
        if let session = broker.claimNewSession(for: self, clientId: request.clientId, expiry: request.sessionExpiry) {
            return begin(session, present: false, subscriptions: subscriptions)
        }
        broker.openSession(for: self, clientId: request.clientId, cleanStart: request.cleanStart,
                           expiry: request.sessionExpiry) { [self] session, present in
            begin(session, present: present, subscriptions: subscriptions)
        }
    }

    /// The session is this connection's: CONNACK and redelivery, then the auth chain's static
    /// subscriptions.
    private func begin(_ session: Session, present: Bool, subscriptions: [StaticSubscription]) {
        attach(session, present: present)
        applyStaticSubscriptions(subscriptions)
    }

    /// `peer_cert_as_username`/`peer_cert_as_clientid`: the certificate's CN or DN replaces what
    /// the client sent (without a certificate, on `verify = "optional"`, the client's own stay).
    private func applyCertificateIdentity(to request: ConnectionStateMachine.ConnectRequest)
        -> ConnectionStateMachine.ConnectRequest? {
        guard let p = connectionPeer, p.asUsername != nil || p.asClientId != nil else { return request }
        machine.useIdentity(clientId: p.asClientId.flatMap { p.value($0) }, username: p.asUsername.flatMap { p.value($0) })
        return machine.connectRequest
    }

    /// A will the client may not publish is discarded (logged), as emqttd does at publish time.
    private func checkWill(then next: @escaping () -> Void) {
        guard let w = will else { return next() }
        broker.auth.authorize(clientInfo, access: .publish, topic: w.topic, on: eventLoop).whenComplete { [self] result in
            guard state == .connecting else { return }
            if (try? result.get())?.allowed != true {
                logger.info("will topic not authorized; will discarded", metadata: ["mqtt.topic": "\(w.topic)"])
                will = nil
            }
            next()
        }
    }

    /// Topic length and level limits; nil when acceptable.
    func checkTopicName(_ topic: String) -> ReasonCode? { machine.topicNameProblem(topic) }

    /// The session is ours: CONNACK, then redelivery. Runs on this loop.
    func attach(_ session: Session, present: Bool) {
        guard state == .connecting, transport != nil else {
            // The client went away while its session was being prepared.
            session.connection = self
            broker.connectionClosed(self, session: session)
            return
        }
        let expiry = machine.sessionExpiry
        self.session = session
        session.connection = self
        session.online.store(true, ordering: .relaxed)
        session.protocolVersion = version
        session.expiryInterval = expiry
        session.persistent.store(broker.store != nil && expiry > 0, ordering: .relaxed)
        session.record(.session(clientId: session.clientId, expiry: expiry, version: version.rawValue))
        session.outbound.window = max(1, min(config.maxInflight, machine.clientReceiveMaximum))
        session.adoptQueueLimits(config)  // a resumed session takes this connection's limits
        wasCounted = true
        let n = broker.clientsConnected.wrappingIncrementThenLoad(ordering: .relaxed)
        var mx = broker.clientsMax.load(ordering: .relaxed)
        while n > mx, !broker.clientsMax.compareExchange(expected: mx, desired: n, ordering: .relaxed).exchanged {
            mx = broker.clientsMax.load(ordering: .relaxed)
        }
        send(machine.attached(sessionPresent: present, now: eventLoop.now.uptimeNanoseconds))
        logger.debug("client connected", metadata: ["mqtt.version": "\(version)", "session.present": "\(present)"])
        broker.publishClientEvent(connected: self)
        hookConnected(keepAlive: keepAlive)
        if present { session.redeliver(ctx: ctx) }
        resumePending()
    }
}
