import Logging
import MQTTCodec
import NIOCore

/// One MQTT connection on its event loop: the connection state machine (CONNECT, keep
/// alive, inbound QoS flows, topic aliases) and the writer for its session's deliveries.
/// Every method runs on the channel's event loop.
final class MQTTConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State { case awaitingConnect, connecting, connected, closed }
    enum CloseKind { case normal, withWill, abnormal, takenOver, serverShutdown }

    let broker: Broker
    let ctx: LoopContext
    var eventLoop: EventLoop { ctx.eventLoop }
    var context: ChannelHandlerContext?
    /// The broker's logger with this connection's peer and client id (built per message logged).
    var logger: ConnectionLog { ConnectionLog(handler: self) }
    var state = State.awaitingConnect
    var version = ProtocolVersion.v3_1_1
    var clientId = ""
    var username: String?
    var peerHost: String
    var peerPort: Int
    let listenerName: String
    var session: Session?
    var will: Will?
    var closeKind = CloseKind.abnormal
    var cleanStart = true
    var sessionExpiryAtConnect: UInt32 = 0

    // Keep alive and timers, checked by the loop's `ConnectionSweep` once a second.
    var keepAlive = 0
    var lastActivity = NIODeadline.uptimeNanoseconds(0)
    var sawPacket = false
    /// 1.5 times the keep alive (keepalive_backoff); 0: none.
    var keepAliveLimit = TimeAmount.nanoseconds(0)
    /// When the 3.1.1 retry of unacknowledged messages runs next; nil: no retry.
    var nextRetry: NIODeadline?
    /// This connection's index in its loop's `ConnectionSweep`; -1 when not in it.
    var sweepSlot = -1

    // What the client told us about itself (5.0).
    var clientReceiveMaximum = 65_535
    var clientMaxPacketSize = Int.max
    var clientTopicAliasMax = 0
    var requestProblemInfo = true
    var wantsResponseInformation = false

    // Topic aliases, per connection.
    var inboundAliases: [UInt16: String] = [:]
    var outboundAliases: [String: UInt16] = [:]
    var nextOutboundAlias: UInt16 = 1

    var pending: [Packet] = []
    /// True while an authorization answer is awaited: later packets wait in `pending`.
    var paused = false
    var superuser = false
    /// Who the client is, for auth providers and hooks (built when asked, not stored: an idle
    /// connection would otherwise keep a second copy of these fields).
    var clientInfo: ClientInfo {
        ClientInfo(clientId: clientId, username: username, peerAddress: peerHost, peerPort: peerPort,
                   protocolLevel: version.rawValue, listener: listenerName)
    }
    /// Per-connection ACL answers (emqttd's ACL cache): no shared state on the hot path.
    var aclCache: [ACLCacheKey: (allowed: Bool, expires: NIODeadline, slot: Int)] = [:]
    var aclCacheGeneration: UInt64 = 0
    /// PUBACK/PUBREC in PUBLISH order; some wait for the durable store (MQTT-4.6.0-2).
    var acks: [PendingAck] = []
    var needsFlush = false
    var wasCounted = false
    /// Splits the byte stream into packets. Decoding here rather than in a
    /// ByteToMessageHandler in front keeps each packet off the pipeline: a packet passed as
    /// NIOAny is boxed (a PUBLISH does not fit an existential's inline storage).
    let decoder: NIOSingleStepByteToMessageProcessor<MQTTPacketDecoder>
    /// Set after the stream failed to decode: later bytes are ignored.
    var decodeFailed = false

    init(broker: Broker, ctx: LoopContext, peerHost: String, peerPort: Int = 0, listenerName: String = "") {
        self.broker = broker
        self.ctx = ctx
        self.peerHost = peerHost
        self.peerPort = peerPort
        self.listenerName = listenerName
        self.decoder = NIOSingleStepByteToMessageProcessor(MQTTPacketDecoder(maxPacketSize: broker.config.mqtt.maxPacketSize,
                                                                            strictUTF8: broker.config.mqtt.strictUTF8))
    }

    /// host:port of the client, [host]:port for IPv6.
    var peer: String { peerHost.contains(":") ? "[\(peerHost)]:\(peerPort)" : "\(peerHost):\(peerPort)" }

    var isWritable: Bool { context?.channel.isWritable ?? false }
    var isActive: Bool { state != .closed && (context?.channel.isActive ?? false) }
    var config: MQTTConfig { broker.config.mqtt }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        lastActivity = eventLoop.now
        broker.register(self)
        // The sweep closes the connection if no CONNECT arrives within idle_timeout.
        ctx.connectionSweep.add(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionLost()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connectionLost()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        ctx.stats.bytesReceived += bytes.readableBytes
        guard !decodeFailed, state != .closed else { return }
        do {
            try decoder.process(buffer: bytes) { received($0) }
        } catch {
            decodeFailed = true
            failed(error)
        }
    }

    /// One decoded packet.
    private func received(_ packet: Packet) {
        ctx.stats.packetsReceived += 1
        sawPacket = true
        switch state {
        case .awaitingConnect:
            guard case .connect(let c) = packet else {
                logger.debug("first packet is not CONNECT", metadata: ["mqtt.packet": "\(packet.type)"])
                close()
                return
            }
            handleConnect(c)
        case .connecting:
            if pending.count >= 1000 {
                protocolError(.receiveMaximumExceeded, "too many packets before CONNACK")
                return
            }
            pending.append(packet)
        case .connected:
            if paused {
                if pending.count >= 1000 {
                    protocolError(.receiveMaximumExceeded, "too many packets while authorization is pending")
                    return
                }
                pending.append(packet)
                return
            }
            handle(packet)
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if sawPacket {
            sawPacket = false
            lastActivity = eventLoop.now
        }
        flushIfDirty()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let s = session, state == .connected {
            s.drainQueue(ctx: ctx)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failed(error)
    }

    /// A decoding or channel error: its wire consequence (CONNACK, DISCONNECT or close).
    private func failed(_ error: Error) {
        switch error {
        case let e as ConnectDecodingError:
            logger.info("rejecting CONNECT", metadata: ["error": "\(e.underlying)"])
            if e.version == .v5 {
                version = .v5
                sendConnAckAndClose(e.underlying.reasonCode)
            } else if case .unsupportedProtocolVersion = e.underlying {
                sendConnAckAndClose(.unsupportedProtocolVersion, v3Format: true)
            } else {
                close()
            }
        case let e as MQTTCodecError:
            logger.info("closing on invalid input", metadata: ["error": "\(e)", "mqtt.client_id": "\(clientId)"])
            if state == .awaitingConnect {
                if case .unsupportedProtocolVersion = e { sendConnAckAndClose(.unsupportedProtocolVersion, v3Format: true) } else { close() }
            } else {
                protocolError(e.reasonCode, "\(e)")
            }
        default:
            logger.debug("connection error", metadata: ["error": "\(error)"])
            close()
        }
    }

    // MARK: Output

    func write(_ buffer: ByteBuffer) {
        guard let context else { return }
        ctx.stats.bytesSent += buffer.readableBytes
        context.write(wrapOutboundOut(buffer), promise: nil)
        if !needsFlush {
            needsFlush = true
            ctx.markDirty(self)
        }
    }

    func send(_ packet: Packet) {
        guard let context else { return }
        var packet = packet
        if clientMaxPacketSize != .max && packet.encodedLength(version: version) > clientMaxPacketSize {
            // Never over the client's Maximum Packet Size (MQTT-3.1.2-24): its Reason String and
            // User Properties go first (MQTT-3.1.2-25); what still does not fit is not sent.
            packet = packet.withoutDiagnostics
            guard packet.encodedLength(version: version) <= clientMaxPacketSize else {
                logger.info("packet exceeds the client's Maximum Packet Size, not sent",
                            metadata: ["mqtt.packet": "\(packet.type)", "mqtt.client_id": "\(clientId)"])
                // A CONNACK (or DISCONNECT) that cannot be sent leaves nothing to say: close at once.
                if case .connack = packet { close() } else if case .disconnect = packet { close() }
                return
            }
        }
        ctx.stats.packetsSent += 1
        write(packet.encoded(version: version, allocator: context.channel.allocator))
    }

    func flushIfDirty() {
        guard needsFlush else { return }
        needsFlush = false
        context?.flush()
    }

    /// Closes the connection; `protocolError` sends a DISCONNECT first for 5.0.
    func close() {
        guard state != .closed, let context else { return }
        flushIfDirty()
        context.close(promise: nil)
    }

    /// How long the input is drained after a DISCONNECT before the socket is closed.
    static let disconnectLinger = TimeAmount.seconds(1)

    /// After a DISCONNECT with a reason code: the connection ends now (session detached, will
    /// handled, counted), but the socket half-closes and discards what the client still sends
    /// for `disconnectLinger`, so a client that is still writing reads the reason code instead
    /// of a reset (closing with unread input makes the kernel send RST).
    func closeAfterDisconnect() {
        guard state != .closed, let context else { return }
        flushIfDirty()
        let channel = context.channel
        connectionLost()
        decodeFailed = true
        // Half-close where the channel supports it (TCP, TLS); else the linger still drains.
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: Self.disconnectLinger) { channel.close(promise: nil) }
    }

    /// A rule was broken: DISCONNECT with `reason` (5.0) or close (3.x).
    func protocolError(_ reason: ReasonCode, _ why: String) {
        logger.info("disconnecting client", metadata: ["mqtt.client_id": "\(clientId)", "reason": "\(reason) \(why)"])
        if version == .v5 && (state == .connected || state == .connecting) {
            var props = Properties()
            if requestProblemInfo { props.items.append(.reasonString(why)) }
            send(.disconnect(DisconnectPacket(reasonCode: reason, properties: props)))
            return closeAfterDisconnect()
        }
        close()
    }

    func sendConnAckAndClose(_ reason: ReasonCode, v3Format: Bool = false) {
        if v3Format { version = .v3_1_1 }
        send(.connack(ConnAckPacket(sessionPresent: false, reasonCode: reason)))
        close()
    }

    /// Broker shutdown: DISCONNECT 0x8B for 5.0 clients, then close.
    func serverShutdown() -> EventLoopFuture<Void> {
        closeKind = .serverShutdown
        guard let context, state != .closed else { return eventLoop.makeSucceededVoidFuture() }
        if version == .v5 && state == .connected {
            send(.disconnect(DisconnectPacket(reasonCode: .serverShuttingDown)))
        }
        flushIfDirty()
        let p = eventLoop.makePromise(of: Void.self)
        context.close(promise: p)
        return p.futureResult.recover { _ in }
    }

    /// Another connection took the client id over.
    func takenOver() {
        closeKind = .takenOver
        if version == .v5 && state == .connected {
            send(.disconnect(DisconnectPacket(reasonCode: .sessionTakenOver)))
            return closeAfterDisconnect()
        }
        close()
    }

    // MARK: Timers

    /// Keep alive from now on (called at CONNECT and CONNACK).
    func armKeepAlive() {
        keepAliveLimit = .milliseconds(Int64(Double(keepAlive) * config.keepaliveBackoff * 1000))
    }

    /// 3.1.1 retry of unacknowledged messages every retry_interval (5.0 retries only on reconnect).
    func startRetryTimer() {
        guard version != .v5, config.retryInterval > 0 else { return }
        nextRetry = eventLoop.now + .milliseconds(Int64(config.retryInterval * 1000))
    }

    /// Called by the loop's `ConnectionSweep` once a second.
    func sweep(now: NIODeadline) {
        switch state {
        case .awaitingConnect:
            if now >= lastActivity + .milliseconds(Int64(config.idleTimeout * 1000)) {
                logger.debug("no CONNECT within idle_timeout, closing")
                close()
            }
        case .connecting, .connected:
            if keepAliveLimit.nanoseconds > 0, now >= lastActivity + keepAliveLimit {
                protocolError(.keepAliveTimeout, "keep alive timeout")
                return
            }
            if state == .connected, let due = nextRetry, now >= due {
                let interval = TimeAmount.milliseconds(Int64(config.retryInterval * 1000))
                nextRetry = due + interval
                retryUnacknowledged(olderThan: now - interval, now: now)
            }
        case .closed:
            break
        }
    }

    private func retryUnacknowledged(olderThan cutoff: NIODeadline, now: NIODeadline) {
        guard let s = session else { return }
        for e in s.outbound.due(before: cutoff, now: now) {
            switch e.phase {
            case .awaitingAck: sendPublish(e.delivery, packetId: e.packetId, dup: true, now: now)
            case .awaitingComp: sendPubRel(e.packetId)
            }
        }
    }

    func connectionLost() {
        guard state != .closed else { return }
        let wasConnected = state == .connected
        state = .closed
        ctx.connectionSweep.remove(self)
        broker.unregister(self)
        if wasCounted {
            wasCounted = false
            broker.clientsConnected.wrappingDecrement(ordering: .relaxed)
        }
        if let s = session, s.connection === self {
            broker.connectionClosed(self, session: s)
        }
        session = nil
        if wasConnected {
            broker.publishClientEvent(disconnected: self)
            hookDisconnected(reason: closeKind == .normal ? "normal" : "\(closeKind)")
        }
    }
}

extension Packet {
    /// The packet without its Reason String and User Properties, which a sender may leave
    /// out to stay under the receiver's Maximum Packet Size (MQTT-3.1.2-25).
    var withoutDiagnostics: Packet {
        func strip(_ p: inout Properties) {
            p.items.removeAll {
                switch $0 {
                case .reasonString, .userProperty: return true
                default: return false
                }
            }
        }
        switch self {
        case .connack(var p): strip(&p.properties); return .connack(p)
        case .puback(var p): strip(&p.properties); return .puback(p)
        case .pubrec(var p): strip(&p.properties); return .pubrec(p)
        case .pubrel(var p): strip(&p.properties); return .pubrel(p)
        case .pubcomp(var p): strip(&p.properties); return .pubcomp(p)
        case .suback(var p): strip(&p.properties); return .suback(p)
        case .unsuback(var p): strip(&p.properties); return .unsuback(p)
        case .disconnect(var p): strip(&p.properties); return .disconnect(p)
        default: return self
        }
    }
}
