import NIOCore

/// Where an MQTT connection's bytes go: a socket (its `ChannelHandlerContext`) or a gateway
/// session's frames on a sidecar connection (`GatewaySession`, no descriptor per client).
/// Called on the connection's event loop only. The connection learns that the transport
/// ended through `MQTTConnectionHandler.connectionLost()` (channelInactive for a socket).
protocol MQTTTransport: AnyObject {
    var transportAllocator: ByteBufferAllocator { get }
    var transportIsWritable: Bool { get }
    var transportIsActive: Bool { get }
    /// The socket's peer; nil where the peer was named otherwise (a gateway session).
    var transportRemoteAddress: SocketAddress? { get }
    func transportWrite(_ bytes: ByteBuffer)
    func transportFlush()
    func transportClose(promise: EventLoopPromise<Void>?)
    /// After a DISCONNECT: stop sending, go on reading (and discarding) for `linger`, then close.
    func transportCloseAfterLinger(_ linger: TimeAmount)
}

extension ChannelHandlerContext: MQTTTransport {
    var transportAllocator: ByteBufferAllocator { channel.allocator }
    var transportIsWritable: Bool { channel.isWritable }
    var transportIsActive: Bool { channel.isActive }
    var transportRemoteAddress: SocketAddress? { channel.remoteAddress }
    func transportWrite(_ bytes: ByteBuffer) { write(NIOAny(bytes), promise: nil) }
    func transportFlush() { flush() }
    func transportClose(promise: EventLoopPromise<Void>?) { close(promise: promise) }

    func transportCloseAfterLinger(_ linger: TimeAmount) {
        let channel = self.channel
        // Half-close where the channel supports it (TCP, TLS; WebSocket sends a close frame);
        // closing with unread input would make the kernel answer with RST.
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
    }
}
