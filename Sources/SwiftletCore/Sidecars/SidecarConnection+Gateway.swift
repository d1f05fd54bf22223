import NIOCore
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
        // An ordinary MQTT connection on a loop of the broker's group, as a TCP client's
        // would be; its transport is this session (no socket, no descriptor).
        let connection = hub.openGatewayConnection(peerAddress, Int(peerPort), name)
        let s = GatewaySession(id: session, owner: self, connection: connection)
        gateways[session] = s
        gatewaySessionCount.wrappingIncrement(ordering: .relaxed)
        if !isWritable { s.ownerWritabilityChanged(false) }
        s.start()
        reply(.gwOpened(session: session), id: id)
        flushIfNeeded()
        logger.debug("gateway session opening", metadata: [
            "sidecar.name": "\(self.name)", "gateway.session": "\(session)", "gateway.protocol": "\(proto)",
            "gateway.peer": "\(peerAddress):\(peerPort)"])
    }

    /// GW_DATA from the sidecar; for a session that is not open it is ignored (SPEC 7.5).
    func gatewayData(session: UInt32, data: ByteBuffer) {
        guard let s = gateways[session] else { return }
        if !s.deliver(data) {
            logger.warning("gateway session overflow", metadata: ["sidecar.name": "\(name)", "gateway.session": "\(session)"])
            end(s, reason: "overflow")
        }
    }

    /// GW_CLOSE from the sidecar: the bytes already sent reach the MQTT connection, then it
    /// sees its peer go away; the broker confirms with its own GW_CLOSE.
    func gatewayClose(session: UInt32) {
        guard let s = gateways[session] else { return }
        end(s, reason: "closed by sidecar")
    }

    /// The MQTT connection ended (DISCONNECT, kicked, taken over, a protocol error).
    func gatewayEnded(_ s: GatewaySession) {
        guard gateways[s.id] === s else { return }
        end(s, reason: "disconnected")
        flushIfNeeded()
    }

    /// Bytes the MQTT connection wrote, as GW_DATA frames of at most `maxFrame - 13` data
    /// bytes. The data is written as a slice after its header, not copied.
    func gatewayOutbound(_ s: GatewaySession, _ batch: [ByteBuffer]) {
        guard gateways[s.id] === s, state == .registered, let context = channelContext else { return }
        let chunk = Int(maxFrame) - 13
        for bytes in batch {
            var data = bytes
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
        }
        markNeedsFlush()
        flushIfNeeded()
    }

    /// Every session's MQTT connection sees the sidecar connection's writability as its own:
    /// while it cannot write, its session queues or drops as for a slow TCP client (SPEC 7.4).
    func gatewayWritabilityChanged(writable: Bool) {
        for s in gateways.values { s.ownerWritabilityChanged(writable) }
    }

    /// The sidecar connection ended: every session's MQTT connection sees its peer go away
    /// (wills fire, persistent sessions stay). No frames: there is no connection left.
    func closeAllGatewaySessions() {
        let all = gateways.values
        gateways = [:]
        for s in all {
            s.peerClosed()
            gatewaySessionCount.wrappingDecrement(ordering: .relaxed)
        }
    }

    private func end(_ s: GatewaySession, reason: String) {
        forget(s)
        if !s.isEnded { s.peerClosed() }
        notify(.gwClose(session: s.id, reason: reason))
        logger.debug("gateway session closed", metadata: [
            "sidecar.name": "\(name)", "gateway.session": "\(s.id)", "reason": "\(reason)"])
    }

    private func forget(_ s: GatewaySession) {
        guard gateways[s.id] === s else { return }
        gateways[s.id] = nil
        gatewaySessionCount.wrappingDecrement(ordering: .relaxed)
    }
}
