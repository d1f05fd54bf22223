import NIOCore
import NIOPosix

/// One gateway session (Protocol/SPEC.md, section 7): a connected socketpair whose one end runs
/// the broker's ordinary MQTT pipeline and whose other end, the pump, is moved to and from
/// GW_DATA frames by the sidecar connection that opened it. Confined to that connection's
/// event loop.
final class GatewaySession {
    enum State { case opening, open, closed }

    /// More GW_DATA bytes than this not yet taken by the MQTT connection close the session
    /// with "overflow" (SPEC 7.4).
    static let bufferLimit = 1 << 20

    let id: UInt32
    var state = State.opening
    /// The pump end, once registered.
    var pump: Channel?
    var pumpHandler: GatewayPump?
    /// GW_DATA received while the pump was being set up.
    var waiting: [ByteBuffer] = []
    /// Bytes received from the sidecar and not yet written into the socketpair.
    var unconsumed = 0
    /// The last write into the pump: a close by the sidecar waits for it (SPEC 7.5).
    var lastWrite: EventLoopFuture<Void>?
    /// The sidecar sent GW_CLOSE before the session was open.
    var closeRequested = false
    /// More than `bufferLimit` bytes came before the session was open.
    var overflowed = false

    init(id: UInt32) { self.id = id }

    /// Hands bytes from the sidecar to the MQTT connection. False when that makes more than
    /// `bufferLimit` bytes waiting (the caller closes the session).
    func deliver(_ data: ByteBuffer) -> Bool {
        let n = data.readableBytes
        guard n > 0 else { return true }
        unconsumed += n
        if unconsumed > Self.bufferLimit {
            overflowed = true
            return false
        }
        guard let pump else {
            waiting.append(data)
            return true
        }
        let f = pump.writeAndFlush(data)
        f.whenComplete { [self] _ in unconsumed -= n }
        lastWrite = f
        return true
    }

    /// The pump is registered: bytes that came meanwhile go in first.
    func attach(_ channel: Channel, handler: GatewayPump) {
        pump = channel
        pumpHandler = handler
        state = .open
        let early = waiting
        waiting = []
        unconsumed = 0
        for d in early { _ = deliver(d) }
    }

    /// Closes the pump end: the MQTT connection sees its peer go away. `afterWrites` lets the
    /// bytes already written reach it first (a sidecar's GW_CLOSE).
    func closePump(afterWrites: Bool) {
        state = .closed
        waiting = []
        guard let pump else { return }
        if afterWrites, let lastWrite {
            lastWrite.whenComplete { _ in pump.close(promise: nil) }
        } else {
            pump.close(promise: nil)
        }
    }

    /// Creates the socketpair and starts the MQTT connection on one end, on a loop of the
    /// broker's group as for any TCP client. Returns the other end, or nil when the system
    /// has no descriptors left.
    static func startMQTT(broker: Broker, peerHost: String, peerPort: Int, listener: String) -> NIOBSDSocket.Handle? {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                         0, &fds) == 0 else { return nil }
        _ = ClientBootstrap(group: broker.group)
            .channelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Listeners.addGatewayMQTTHandlers(channel: channel, broker: broker, listener: listener,
                                                         peerHost: peerHost, peerPort: peerPort)
                }
            }
            .withConnectedSocket(fds[0])
        return fds[1]
    }
}

extension Listeners {
    /// The pipeline of `addMQTTHandlers` for a gateway session, whose peer is the one the
    /// sidecar named rather than the socket's (set before any byte is read).
    static func addGatewayMQTTHandlers(channel: Channel, broker: Broker, listener: String, peerHost: String,
                                       peerPort: Int) throws {
        try addMQTTHandlers(channel: channel, broker: broker, listener: listener)
        let handler = try channel.pipeline.syncOperations.handler(type: MQTTConnectionHandler.self)
        handler.peerHost = peerHost
        handler.peerPort = peerPort
    }
}

/// The sidecar's end of a gateway session's socketpair: what the MQTT connection writes goes
/// out as GW_DATA; reading stops while the sidecar connection is not writable, so the MQTT
/// connection sees a slow client (SPEC 7.4).
final class GatewayPump: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    unowned let owner: SidecarConnection
    let session: GatewaySession
    private var context: ChannelHandlerContext?
    private var paused = false
    private var readPending = false

    init(owner: SidecarConnection, session: GatewaySession) {
        self.owner = owner
        self.session = session
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner.gatewayOutbound(session, unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner.flushGateway()
    }

    func channelInactive(context: ChannelHandlerContext) {
        owner.gatewayEnded(session)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    func pause() { paused = true }

    func resume() {
        guard paused else { return }
        paused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }
}
