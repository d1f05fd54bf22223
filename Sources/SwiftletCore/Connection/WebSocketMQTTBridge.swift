import NIOCore
import NIOWebSocket

/// MQTT over WebSocket: binary frames in, MQTT bytes out; MQTT bytes in, binary frames out.
/// Frames need not align with MQTT packets (MQTT 5.0 6.0): a packet may span frames, a frame
/// may hold several packets, and a message may be fragmented, so the decoder simply sees a
/// byte stream. What RFC 6455 asks of a server is checked here; a violation is a close frame
/// with its status code (1002 protocol error, 1003 text data), then the close.
final class WebSocketMQTTBridge: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    let listener: ListenerState?
    private var closeSent = false
    /// A fragmented binary message is open: continuation frames belong to it.
    private var inMessage = false

    init(listener: ListenerState? = nil) {
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closeSent || frame.opcode == .connectionClose else { return }
        // Section 5.1: a client masks every frame. Section 5.2: no extension was negotiated.
        if frame.maskKey == nil { return violation(context, .protocolError, "unmasked client frame") }
        if frame.rsv1 || frame.rsv2 || frame.rsv3 { return violation(context, .protocolError, "reserved bits set") }
        switch frame.opcode {
        case .binary:
            if inMessage { return violation(context, .protocolError, "new message inside a fragmented one") }
            inMessage = !frame.fin
            context.fireChannelRead(wrapInboundOut(frame.unmaskedData))
        case .continuation:
            guard inMessage else { return violation(context, .protocolError, "continuation without a message") }
            inMessage = !frame.fin
            context.fireChannelRead(wrapInboundOut(frame.unmaskedData))
        case .text:
            // MQTT is binary only (MQTT-6.0.0-1).
            violation(context, .unacceptableData, "text frame")
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            // The client's answer to our close frame ends the connection; else we answer its
            // close with the same status code (section 5.5.1).
            if closeSent { return context.close(promise: nil) }
            var payload = frame.unmaskedData
            guard payload.readableBytes != 1, let code = payload.readableBytes >= 2 ? payload.readWebSocketErrorCode() : .normalClosure
            else { return violation(context, .protocolError, "close frame with a one-byte body") }
            sendClose(context: context, code: code)
        default:
            violation(context, .protocolError, "unknown opcode \(frame.opcode)")
        }
    }

    /// Writes since the last flush, sent as one binary frame at the flush: the connection
    /// writes every packet of a loop tick and flushes once, so a burst of small PUBLISHes
    /// costs one frame header (and one frame to decode in the browser), not one per packet.
    private var pending: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var bytes = unwrapOutboundIn(data)
        guard promise == nil else {
            writePending(context)
            return context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: bytes)), promise: promise)
        }
        if pending == nil {
            pending = bytes
        } else {
            pending!.writeBuffer(&bytes)
        }
    }

    func flush(context: ChannelHandlerContext) {
        writePending(context)
        context.flush()
    }

    private func writePending(_ context: ChannelHandlerContext) {
        guard let bytes = pending else { return }
        pending = nil
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: bytes)), promise: nil)
    }

    /// The MQTT handler half-closes after a DISCONNECT: on WebSocket that is a close frame,
    /// and the socket closes when the client answers it (or when the handler's linger ends).
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else {
            // A full close (client DISCONNECT, kick, shutdown) still says goodbye with 1000.
            guard mode == .all, !closeSent, context.channel.isActive else { return context.close(mode: mode, promise: promise) }
            closeSent = true
            writePending(context)
            var data = context.channel.allocator.buffer(capacity: 2)
            data.write(webSocketErrorCode: .normalClosure)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)))
                .whenComplete { _ in context.close(mode: .all, promise: promise) }
            return
        }
        guard !closeSent else {
            promise?.succeed(())
            return
        }
        closeSent = true
        writePending(context)
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .normalClosure)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)), promise: promise)
    }

    private func violation(_ context: ChannelHandlerContext, _ code: WebSocketErrorCode, _ why: String) {
        listener?.malformed(peer: context.channel.remoteAddress.map(ListenerState.describe) ?? "unknown",
                            detail: "WebSocket: \(why)", clientId: "")
        sendClose(context: context, code: code)
    }

    private func sendClose(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closeSent else { return }
        closeSent = true
        writePending(context)
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in context.close(promise: nil) }
    }
}
