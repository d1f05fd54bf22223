import NIOCore
import NIOWebSocket

/// MQTT over WebSocket: binary frames in, MQTT bytes out; MQTT bytes in, binary frames out.
/// Frames need not align with MQTT packets (MQTT 5.0 6.0): a packet may span frames, a frame
/// may hold several packets, and a message may be fragmented, so the decoder simply sees a
/// byte stream. What RFC 6455 asks of a server is checked here; a violation is a close frame
/// with its status code (1002 protocol error, 1003 text data), then the close.
///
/// Inbound, the payloads of the binary frames of one socket read are gathered into one
/// buffer and unmasked there, a word at a time, and the MQTT handler gets that buffer once, at
/// the end of the read: a client that sends one packet per frame (paho, the generator) costs
/// one buffer and one pass through the MQTT decoder per read, as on TCP, rather than a copy
/// (`WebSocketFrame.unmaskedData`, unmasked a byte at a time) and a decoder pass per packet.
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

    /// Unmasked payload bytes of this read, for the MQTT handler at the read's end.
    private var inbound: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closeSent || frame.opcode == .connectionClose else { return }
        // Section 5.1: a client masks every frame. Section 5.2: no extension was negotiated.
        guard let mask = frame.maskKey else { return violation(context, .protocolError, "unmasked client frame") }
        if frame.rsv1 || frame.rsv2 || frame.rsv3 { return violation(context, .protocolError, "reserved bits set") }
        switch frame.opcode {
        case .binary:
            if inMessage { return violation(context, .protocolError, "new message inside a fragmented one") }
            inMessage = !frame.fin
            gather(frame.data, mask: mask, context: context)
        case .continuation:
            guard inMessage else { return violation(context, .protocolError, "continuation without a message") }
            inMessage = !frame.fin
            gather(frame.data, mask: mask, context: context)
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
            deliver(context)
            if closeSent { return context.close(promise: nil) }
            var payload = frame.unmaskedData
            guard payload.readableBytes != 1, let code = payload.readableBytes >= 2 ? payload.readWebSocketErrorCode() : .normalClosure
            else { return violation(context, .protocolError, "close frame with a one-byte body") }
            sendClose(context: context, code: code)
        default:
            violation(context, .protocolError, "unknown opcode \(frame.opcode)")
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        deliver(context)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deliver(context)
        context.fireChannelInactive()
    }

    private func gather(_ masked: ByteBuffer, mask: WebSocketMaskingKey, context: ChannelHandlerContext) {
        guard masked.readableBytes > 0 else { return }
        if inbound == nil { inbound = context.channel.allocator.buffer(capacity: max(masked.readableBytes, 1024)) }
        let start = inbound!.writerIndex
        var bytes = masked
        inbound!.writeBuffer(&bytes)
        inbound!.unmaskWebSocket(at: start, count: masked.readableBytes, key: mask)
    }

    /// Passes what this read gathered to the MQTT handler.
    private func deliver(_ context: ChannelHandlerContext) {
        guard let bytes = inbound else { return }
        inbound = nil
        context.fireChannelRead(wrapInboundOut(bytes))
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
        // What came before the bad frame is the client's: the MQTT handler sees it first.
        deliver(context)
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

extension ByteBuffer {
    /// XORs `count` bytes from `index` with the masking key (RFC 6455 5.3), eight at a time;
    /// masking and unmasking are the same operation. Each frame starts at key byte 0.
    mutating func unmaskWebSocket(at index: Int, count: Int, key: WebSocketMaskingKey) {
        var word: UInt64 = 0
        for j in 0..<8 { word |= UInt64(key[j % 4]) << (8 * j) }
        let mask = UInt64(littleEndian: word)
        let start = index - readerIndex
        withUnsafeMutableReadableBytes { all in
            let p = UnsafeMutableRawBufferPointer(rebasing: all[start..<(start + count)])
            var i = 0
            while i + 8 <= count {
                p.storeBytes(of: p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ mask, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < count {
                p[i] ^= key[i % 4]
                i += 1
            }
        }
    }
}
