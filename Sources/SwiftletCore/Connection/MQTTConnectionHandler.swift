import DequeModule
import MQTTProtocol
import SwiftletAuth
import SwiftletConfig
import Logging
import MQTTCodec
import NIOCore
import NIOSSL
import NIOWebSocket

/// One MQTT connection on its event loop: the connection state machine (CONNECT, keep
/// alive, inbound QoS flows, topic aliases) and the writer for its session's deliveries.
/// Every method runs on the channel's event loop.
final class MQTTConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    typealias State = ConnectionStateMachine.Phase
    enum CloseKind { case normal, withWill, abnormal, takenOver, serverShutdown }

    // Every connection holds its handler, parked or not: the stored fields are ordered so
    // that they pack (344 B, malloc's 352 B class; `HandlerLayoutTests` checks it). The
    // one-byte flags and the narrow numbers go last, together.

    let broker: Broker
    let ctx: LoopContext
    /// The socket's context, or a gateway session; nil once the connection is gone.
    var transport: MQTTTransport?
    /// The MQTT rules of this connection; this handler executes what it decides.
    var machine: ConnectionStateMachine
    var peerHost: String
    /// The listener that accepted the connection (a gateway's, for a gateway session).
    let listener: ListenerState
    var session: Session?
    /// What most connections lack, out of line: a will (a `Will?` inline was ~60 B of every
    /// handler) and what the listener learnt of the peer (certificate names, a proxied address).
    private var rare: OutOfLine<Rare>?
    var pending: [Packet] = []
    /// Per-connection ACL answers (emqttd's ACL cache): no shared state on the hot path.
    var aclCache: [ACLCacheKey: (allowed: Bool, expires: NIODeadline, slot: Int)] = [:]
    var aclCacheGeneration: UInt64 = 0
    /// PUBACK/PUBREC in PUBLISH order; some wait for the durable store (MQTT-4.6.0-2). A
    /// deque: a slow commit leaves thousands waiting, and an array's removeFirst made sending
    /// them quadratic on the event loop (the stall of QoS 1 to a persistent session).
    var acks = Deque<PendingAck>()
    /// The commit the last ack callback was registered for: later acks waiting for the same
    /// commit (one future per loop and batch) share that callback.
    var awaitedCommit: EventLoopFuture<Void>?
    /// Small packets encoded since the last flush (acks, QoS 1/2 PUBLISH headers with small
    /// payloads), handed to the transport as one buffer at the flush or before the next
    /// shared buffer: one allocation and one pipeline write per flush instead of per packet
    /// (each was ~4 % of a QoS 1 message's broker time in the profile). Nil between flushes,
    /// so an idle connection holds nothing; handed over at `coalesceLimit` bytes, so NIO's
    /// write-buffer water marks see what is queued.
    var pendingOut: ByteBuffer?
    var wasCounted = false
    /// Splits the byte stream into packets. Decoding here rather than in a
    /// ByteToMessageHandler in front keeps each packet off the pipeline: a packet passed as
    /// NIOAny is boxed (a PUBLISH does not fit an existential's inline storage).
    var framer: PacketFramer
    /// Set after the stream failed to decode: later bytes are ignored.
    var decodeFailed = false
    var closeKind = CloseKind.abnormal
    var sawPacket = false
    // Connection parking (MQTTConnectionHandler+Parking.swift).
    /// A packet was read or written since the last sweep.
    var activeSinceSweep = false
    /// Parking was tried and cannot work for this connection (no descriptor, the lot refused).
    var parkRefused = false
    /// A packet trace has a handler in the pipeline: the connection is not parked meanwhile.
    var traced = false
    /// True while an authorization answer is awaited: later packets wait in `pending`.
    var paused = false
    var superuser = false
    var needsFlush = false
    /// Sweeps in a row that found the connection idle (saturating).
    var idleSweeps: UInt16 = 0
    private var port16: UInt16
    private var sweepSlot32: Int32 = -1

    static let coalesceLimit = 16 * 1024
    /// A QoS 1/2 payload up to this size is copied after its header into `pendingOut`;
    /// a larger one is written as a slice of the message (no copy).
    static let inlinePayloadLimit = 512

    /// Every connection of a listener with PROXY protocol, a forwarded-address header or
    /// client certificates has a `ConnectionPeer`: the will (~60 B) is boxed again, so theirs
    /// stays a 32 B box.
    struct Rare: OutOfLineValue {
        var willBox: OutOfLine<Will>?
        var connectionPeer: ConnectionPeer?
        var isEmpty: Bool { willBox == nil && connectionPeer == nil }
    }

    var eventLoop: EventLoop { ctx.eventLoop }
    /// The broker's logger with this connection's peer and client id (built per message logged).
    var logger: ConnectionLog { ConnectionLog(handler: self) }
    var state: State { machine.phase }
    var version: ProtocolVersion { machine.version }
    var clientId: String { machine.clientId }
    var username: String? { machine.connectRequest?.username }
    var keepAlive: Int { machine.keepAlive }
    var cleanStart: Bool { machine.connectRequest?.cleanStart ?? true }
    var clientMaxPacketSize: Int { machine.clientMaxPacketSize }
    var peerPort: Int {
        get { Int(port16) }
        set { port16 = UInt16(clamping: newValue) }
    }
    var listenerName: String { listener.name }
    /// This connection's index in its loop's `ConnectionSweep`; -1 when not in it.
    var sweepSlot: Int {
        get { Int(sweepSlot32) }
        set { sweepSlot32 = Int32(newValue) }
    }
    var will: Will? {
        get { rare?.value.willBox?.value }
        set { rare.update { $0.willBox = newValue.map { OutOfLine($0) } } }
    }
    /// The client certificate's names on a listener that asks for one (nil elsewhere).
    var connectionPeer: ConnectionPeer? {
        get { rare?.value.connectionPeer }
        set { rare.update { $0.connectionPeer = newValue } }
    }
    /// Who the client is, for auth providers and hooks (built when asked, not stored: an idle
    /// connection would otherwise keep a second copy of these fields).
    var clientInfo: ClientInfo {
        ClientInfo(clientId: clientId, username: username, peerAddress: peerHost, peerPort: peerPort,
                   protocolLevel: version.rawValue, listener: listenerName,
                   certCommonName: connectionPeer?.commonName, certSubject: connectionPeer?.subject)
    }

    init(broker: Broker, ctx: LoopContext, peerHost: String, peerPort: Int = 0, listener: ListenerState) {
        self.broker = broker
        self.ctx = ctx
        self.peerHost = peerHost
        self.port16 = UInt16(clamping: peerPort)
        self.listener = listener
        let policy = broker.connectionPolicy  // read once: a reload applies to later connections
        self.machine = ConnectionStateMachine(policy: policy, now: ctx.eventLoop.now.uptimeNanoseconds)
        self.framer = PacketFramer(MQTTPacketDecoder(maxPacketSize: policy.mqtt.maxPacketSize,
                                                     strictUTF8: policy.mqtt.strictUTF8))
    }

    /// `peerHost` of a connection whose socket had no peer address when it was set up.
    static let unknownHost = "unknown"

    /// host:port of the client, [host]:port for IPv6.
    var peer: String { peerHost.contains(":") ? "[\(peerHost)]:\(peerPort)" : "\(peerHost):\(peerPort)" }

    var isWritable: Bool { transport?.transportIsWritable ?? false }
    var isActive: Bool { state != .closed && (transport?.transportIsActive ?? false) }
    var config: MQTTConfig { machine.config }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        // A parked connection's new channel takes over once active (`channelActive`).
        if transport is ParkedSocket { return }
        start(transport: context)
    }

    func channelActive(context: ChannelHandlerContext) {
        if transport !== context, let p = transport as? ParkedSocket, p.state == .waking {
            transport = context
            p.handBack(to: context)
        }
        context.fireChannelActive()
    }

    /// The connection begins on `transport` (a socket's context, or a gateway session).
    func start(transport: MQTTTransport) {
        self.transport = transport
        machine.activity(now: eventLoop.now.uptimeNanoseconds)
        broker.register(self)
        // The sweep closes the connection if no CONNECT arrives within idle_timeout.
        ctx.connectionSweep.add(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A channel given up when the connection was parked ends without the connection.
        if transport === context { connectionLost() }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        guard transport === context else { return }
        connectionLost()
        self.transport = nil
        self.pendingOut = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data))
    }

    /// Bytes from the client.
    func receive(_ bytes: ByteBuffer) {
        ctx.stats.bytesReceived += bytes.readableBytes
        guard !decodeFailed, state != .closed else { return }
        do {
            try framer.process(bytes) { received($0) }
        } catch {
            decodeFailed = true
            failed(error)
        }
    }

    /// One decoded packet.
    private func received(_ packet: Packet) {
        ctx.stats.packetsReceived += 1
        sawPacket = true
        if paused || state == .connecting {
            // Order is kept: later packets wait for the answer (auth, ACL) being awaited.
            guard state != .closed else { return }
            if pending.count >= 1000 {
                return execute(machine.violation(.receiveMaximumExceeded, "too many packets while an answer is awaited"))
            }
            pending.append(packet)
            return
        }
        handle(packet)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readComplete()
    }

    /// The end of a batch of reads: keep alive restarts, writes are flushed.
    func readComplete() {
        if sawPacket {
            sawPacket = false
            activeSinceSweep = true
            machine.activity(now: eventLoop.now.uptimeNanoseconds)
        }
        flushIfDirty()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    /// The transport became writable (or not): a writable one drains the session's queue.
    func writabilityChanged() {
        if isWritable, let s = session, state == .connected {
            s.drainQueue(ctx: ctx)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failed(error)
    }

    /// A decoding or channel error: its wire consequence (CONNACK, DISCONNECT or close).
    private func failed(_ error: Error) {
        switch error {
        case is ConnectDecodingError, is MQTTCodecError:
            // Rate-limited per listener: a hostile client must not fill the disk.
            listener.malformed(peer: peer, detail: "\(error)", clientId: clientId)
        case NIOSSLError.uncleanShutdown:
            // The peer closed without close_notify: a hang-up, not a refusal.
            logger.debug("connection error", metadata: ["error": "\(error)"])
        case is NIOSSLError, is BoringSSLError where state == .awaitingConnect:
            listener.refused(.tls, peer: peer, detail: "TLS handshake failed: \(error)")
        case is NIOWebSocketError:
            // NIOWebSocket's error handler has sent the close frame (1002, 1009).
            listener.malformed(peer: peer, detail: "WebSocket: \(error)", clientId: clientId)
        default:
            logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        execute(machine.decodingFailed(error))
    }

    // MARK: Output

    func write(_ buffer: ByteBuffer) {
        guard let transport else { return }
        handOffPendingOut(transport)
        ctx.stats.bytesSent += buffer.readableBytes
        transport.transportWrite(buffer)
        markNeedsFlush()
    }

    /// Writes the coalesced small packets (if any) ahead of whatever comes next.
    @inline(__always)
    private func handOffPendingOut(_ transport: MQTTTransport) {
        if let p = pendingOut {
            pendingOut = nil
            transport.transportWrite(p)
        }
    }

    @inline(__always)
    private func markNeedsFlush() {
        if !needsFlush {
            needsFlush = true
            activeSinceSweep = true
            ctx.markDirty(self)
        }
    }

    /// Appends what `encode` writes to `pendingOut` (see there).
    @inline(__always)
    func writeCoalesced(_ encode: (inout ByteBuffer) -> Void) {
        guard let transport else { return }
        var b: ByteBuffer
        if let p = pendingOut {
            b = p
            pendingOut = nil  // `b` is the only reference: appending does not copy
        } else {
            b = ctx.takeOutBuffer(transport.transportAllocator)
        }
        let before = b.writerIndex
        encode(&b)
        ctx.stats.bytesSent += b.writerIndex - before
        if b.readableBytes >= Self.coalesceLimit {
            transport.transportWrite(b)
        } else {
            pendingOut = b
        }
        markNeedsFlush()
    }

    func send(_ packet: Packet) {
        guard let transport else { return }
        // The common case, no Maximum Packet Size from the client (every 3.x client): no copy
        // of the packet through the state machine (measured: ~1,500 instructions per ack).
        guard machine.clientMaxPacketSize != .max else {
            ctx.stats.packetsSent += 1
            let version = self.version
            writeCoalesced { packet.encode(into: &$0, version: version) }
            return
        }
        let (fitting, mustClose) = machine.fitting(packet)
        guard let fitting else {
            logger.info("packet exceeds the client's Maximum Packet Size, not sent",
                        metadata: ["mqtt.packet": "\(packet.type)", "mqtt.client_id": "\(clientId)"])
            if mustClose { close() }
            return
        }
        ctx.stats.packetsSent += 1
        let version = self.version
        writeCoalesced { fitting.encode(into: &$0, version: version) }
    }

    func flushIfDirty() {
        guard needsFlush else { return }
        needsFlush = false
        guard let transport else { return }
        let out = pendingOut
        handOffPendingOut(transport)
        transport.transportFlush()
        if let out { ctx.returnOutBuffer(out) }
    }

    /// Closes the connection; `protocolError` sends a DISCONNECT first for 5.0.
    func close() {
        guard state != .closed, let transport else { return }
        flushIfDirty()
        transport.transportClose(promise: nil)
    }

    /// How long the input is drained after a DISCONNECT before the socket is closed.
    static let disconnectLinger = TimeAmount.seconds(1)

    /// After a DISCONNECT with a reason code: the connection ends now (session detached, will
    /// handled, counted), but the socket half-closes and discards what the client still sends
    /// for `disconnectLinger`, so a client that is still writing reads the reason code instead
    /// of a reset (closing with unread input makes the kernel send RST).
    func closeAfterDisconnect() {
        guard state != .closed, let transport else { return }
        flushIfDirty()
        connectionLost()
        decodeFailed = true
        transport.transportCloseAfterLinger(Self.disconnectLinger)
    }

    /// A rule was broken: DISCONNECT with `reason` (5.0) or close (3.x), as the machine decides.
    func protocolError(_ reason: ReasonCode, _ why: String) {
        execute(machine.violation(reason, why))
    }

    /// Broker shutdown: DISCONNECT 0x8B for 5.0 clients, then close.
    func serverShutdown() -> EventLoopFuture<Void> {
        closeKind = .serverShutdown
        guard let transport, state != .closed else { return eventLoop.makeSucceededVoidFuture() }
        if case .disconnect(let d, _) = machine.shuttingDown() { send(.disconnect(d)) }
        flushIfDirty()
        let p = eventLoop.makePromise(of: Void.self)
        transport.transportClose(promise: p)
        return p.futureResult.recover { _ in }
    }

    /// Another connection took the client id over.
    func takenOver() {
        closeKind = .takenOver
        execute(machine.takenOver())
    }

    // MARK: Actions

    /// Carries out what the state machine decided.
    func execute(_ action: ConnectionStateMachine.Action) {
        switch action {
        case .none:
            break
        case .send(let p):
            send(p)
        case .close:
            close()
        case .disconnect(let d, let why):
            logger.info("disconnecting client", metadata: ["mqtt.client_id": "\(clientId)", "reason": "\(d.reasonCode) \(why)"])
            send(.disconnect(d))
            closeAfterDisconnect()
        case .refuse(let ack, let why):
            listener.refused(.connect, peer: peer, detail: "CONNECT refused: \(ack.reasonCode) \(why) (client id \(clientId))")
            send(.connack(ack))
            close()
        case .hold:
            break // handle(_:) keeps the packet
        case .authenticate(let password, let will):
            self.will = will
            authenticate(password: password)
        case .publish(let p, let topic):
            guard let session else { return }
            publishValid(p, topic: topic, session: session)
        case .acknowledge(let p, let reason):
            ctx.stats.messagesDropped += 1
            ackPublish(p, reason: reason)
        case .duplicate(let p):
            // A resend of a message already routed: acknowledge, do not route again.
            if let id = p.packetId { queueAck(.pubrec(PubAckPacket(packetId: id)), after: nil) }
        case .acknowledged(let kind, let a):
            guard let session else { return }
            acknowledged(kind, a, session: session)
        case .release(let a):
            guard let session else { return }
            released(a, session: session)
        case .subscribe(let s):
            guard let session else { return }
            handleSubscribe(s, session: session)
        case .unsubscribe(let u):
            guard let session else { return }
            handleUnsubscribe(u, session: session)
        case .clientDisconnect(let withWill):
            session?.expiryInterval = machine.sessionExpiry
            closeKind = withWill ? .withWill : .normal
            close()
        case .retry(let cutoff):
            retryUnacknowledged(olderThan: NIODeadline.uptimeNanoseconds(cutoff), now: eventLoop.now)
        }
    }

    /// Called by the loop's `ConnectionSweep` once a second.
    func sweep(now: NIODeadline) {
        let action = machine.tick(now: now.uptimeNanoseconds)
        switch action {
        case .none: return considerParking()  // nearly every tick: nothing due (no Action comparison, no dispatch)
        case .close where state == .awaitingConnect: logger.debug("no CONNECT within idle_timeout, closing")
        default: break
        }
        execute(action)
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
        machine.closed()
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

