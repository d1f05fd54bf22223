import NIOCore
import NIOPosix
import SwiftletIPC

/// Gateway sessions (Protocol/SPEC.md, section 7), on the sidecar connection's event loop.
extension SidecarConnection {
    /// GW_OPEN: a new MQTT connection whose bytes travel in GW_DATA frames.
    func gatewayOpen(id: UInt32, session: UInt32, protocol proto: String, peerAddress: String, peerPort: UInt16,
                     listener: String) {
        func refuse(_ code: IPCErrorCode, _ text: String) {
            reply(.error(code: code.rawValue, message: text), id: id)
        }
        guard state == .registered else { return refuse(.wrongState, "GW_OPEN before REGISTERED") }
        guard gatewayProtocols.contains(proto) else {
            return refuse(.wrongState, gatewayProtocols.isEmpty ? "no gateway capability registered"
                                                                : "no gateway capability for protocol \(proto)")
        }
        guard gateways[session] == nil else { return refuse(.wrongState, "session \(session) is already open") }
        guard gateways.count < hub.config.maxGatewaySessions else {
            logger.warning("gateway session refused: limit reached", metadata: [
                "sidecar.name": "\(self.name)", "gateway.max_sessions": "\(hub.config.maxGatewaySessions)"])
            return refuse(.overloaded, "at most \(hub.config.maxGatewaySessions) gateway sessions per sidecar")
        }
        let name = listener.isEmpty ? proto : listener
        guard let fd = GatewaySession.startMQTT(broker: hub.broker, peerHost: peerAddress, peerPort: Int(peerPort),
                                                listener: name)
        else {
            logger.warning("cannot create a gateway session", metadata: ["sidecar.name": "\(self.name)", "error": "socketpair failed"])
            return refuse(.overloaded, "no descriptors for a new session")
        }
        let s = GatewaySession(id: session)
        gateways[session] = s
        gatewaySessionCount.wrappingIncrement(ordering: .relaxed)
        let pump = GatewayPump(owner: self, session: s)
        ClientBootstrap(group: eventLoop)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(pump) } }
            .withConnectedSocket(fd)
            .whenComplete { [self] result in
                switch result {
                case .success(let ch):
                    guard s.state == .opening else {
                        // The sidecar connection ended meanwhile.
                        ch.close(promise: nil)
                        return
                    }
                    s.attach(ch, handler: pump)
                    if isWritable { pump.resume() } else { pump.pause() }
                    reply(.gwOpened(session: session), id: id)
                    if s.closeRequested {
                        end(s, reason: "closed by sidecar", afterWrites: true)
                    } else if s.overflowed {
                        end(s, reason: "overflow", afterWrites: false)
                    }
                    flushIfNeeded()
                case .failure(let error):
                    logger.warning("cannot create a gateway session", metadata: ["sidecar.name": "\(self.name)", "error": "\(error)"])
                    guard s.state == .opening else { return }
                    forget(s)
                    refuse(.overloaded, "cannot create the session: \(error)")
                    flushIfNeeded()
                }
            }
        logger.debug("gateway session opening", metadata: [
            "sidecar.name": "\(self.name)", "gateway.session": "\(session)", "gateway.protocol": "\(proto)",
            "gateway.peer": "\(peerAddress):\(peerPort)"])
    }

    /// GW_DATA from the sidecar; for a session that is not open it is ignored (SPEC 7.5).
    func gatewayData(session: UInt32, data: ByteBuffer) {
        guard let s = gateways[session] else { return }
        if !s.deliver(data) {
            logger.warning("gateway session overflow", metadata: ["sidecar.name": "\(name)", "gateway.session": "\(session)"])
            if s.state == .open { end(s, reason: "overflow", afterWrites: false) }
        }
    }

    /// GW_CLOSE from the sidecar: the bytes already sent reach the MQTT connection, then it
    /// sees its peer go away; the broker confirms with its own GW_CLOSE.
    func gatewayClose(session: UInt32) {
        guard let s = gateways[session] else { return }
        if s.state == .opening {
            s.closeRequested = true
        } else {
            end(s, reason: "closed by sidecar", afterWrites: true)
        }
    }

    /// The pump end closed: the MQTT connection ended.
    func gatewayEnded(_ s: GatewaySession) {
        guard s.state == .open, gateways[s.id] === s else { return }
        end(s, reason: "disconnected", afterWrites: false)
        flushIfNeeded()
    }

    /// Bytes the MQTT connection wrote, as GW_DATA frames of at most `maxFrame - 13` data
    /// bytes. The data is written as a slice after its header, not copied.
    func gatewayOutbound(_ s: GatewaySession, _ bytes: ByteBuffer) {
        guard s.state == .open, state == .registered, let context = channelContext else { return }
        var data = bytes
        let chunk = Int(maxFrame) - 13
        while data.readableBytes > 0 {
            let n = min(chunk, data.readableBytes)
            let slice = data.readSlice(length: n)!
            var head = context.channel.allocator.buffer(capacity: 17)
            head.writeInteger(UInt32(13 + n))
            head.writeInteger(IPCKind.gwData.rawValue)
            head.writeInteger(UInt32(0))
            head.writeInteger(s.id)
            head.writeInteger(UInt32(n))
            context.write(NIOAny(head), promise: nil)
            context.write(NIOAny(slice), promise: nil)
        }
        markNeedsFlush()
    }

    func flushGateway() { flushIfNeeded() }

    /// Stops or restarts reading every session's MQTT stream as the sidecar connection's
    /// writability changes.
    func gatewayWritabilityChanged(writable: Bool) {
        for s in gateways.values {
            if writable { s.pumpHandler?.resume() } else { s.pumpHandler?.pause() }
        }
    }

    /// The sidecar connection ended: every session's MQTT connection sees its peer go away
    /// (wills fire, persistent sessions stay). No frames: there is no connection left.
    func closeAllGatewaySessions() {
        let all = gateways.values
        gateways = [:]
        for s in all {
            s.closePump(afterWrites: false)
            gatewaySessionCount.wrappingDecrement(ordering: .relaxed)
        }
    }

    private func end(_ s: GatewaySession, reason: String, afterWrites: Bool) {
        forget(s)
        s.closePump(afterWrites: afterWrites)
        notify(.gwClose(session: s.id, reason: reason))
        logger.debug("gateway session closed", metadata: [
            "sidecar.name": "\(name)", "gateway.session": "\(s.id)", "reason": "\(reason)"])
    }

    private func forget(_ s: GatewaySession) {
        guard gateways[s.id] === s else { return }
        gateways[s.id] = nil
        s.state = .closed
        gatewaySessionCount.wrappingDecrement(ordering: .relaxed)
    }
}
