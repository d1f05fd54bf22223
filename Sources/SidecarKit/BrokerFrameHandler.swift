import NIOCore
import SwiftletIPC

/// Frames on the sidecar's side of the socket: splits bytes into `IPCFrame`s, checking the
/// length before buffering the body, and encodes outgoing frames. The negotiated maximum
/// takes effect right after WELCOME, for the very next frame (SPEC 2), which is why the
/// handler reads WELCOME's `max_frame` itself rather than waiting for the session.
final class BrokerFrameHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = IPCFrame
    typealias OutboundIn = IPCFrame
    typealias OutboundOut = ByteBuffer

    private var decoder = IPCFrameDecoder()
    private var cumulation: ByteBuffer?
    private let localMaxFrame: UInt32
    private var welcomed = false
    private var failed = false

    init(localMaxFrame: UInt32) {
        self.localMaxFrame = max(localMaxFrame, IPCVersion.handshakeMaxFrame)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var bytes = unwrapInboundIn(data)
        if cumulation == nil {
            cumulation = bytes
        } else {
            cumulation!.writeBuffer(&bytes)
        }
        while !failed, var buf = cumulation {
            cumulation = nil
            // The request id, read before the decoder moves past it (for ERROR 2 below).
            let peekedId = buf.getInteger(at: buf.readerIndex + 5, as: UInt32.self)
            let frame: IPCFrame?
            do {
                frame = try decoder.decode(buffer: &buf)
            } catch {
                if case IPCError.unknownKind(let k) = error, let id = peekedId, id != 0 {
                    // As the broker does (SPEC 4): a request id on an unknown kind is answered first.
                    let reply = IPCMessage.error(code: IPCErrorCode.unknownKind.rawValue,
                                                 message: "unknown kind 0x\(String(k, radix: 16))").frame(requestId: id)
                    context.writeAndFlush(wrapOutboundOut(reply.encoded), promise: nil)
                }
                return fail(context: context, error)
            }
            if buf.readableBytes > 0 { cumulation = buf }
            guard let frame else { break }
            if !welcomed, frame.kind == .welcome, case .welcome(_, _, _, let theirs)? = try? IPCMessage.decode(frame) {
                welcomed = true
                decoder.maxFrame = max(IPCVersion.handshakeMaxFrame, min(localMaxFrame, theirs))
            }
            context.fireChannelRead(wrapInboundOut(frame))
        }
        if let c = cumulation, c.readerIndex > 65_536 { cumulation = c.slice() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !failed, let c = cumulation, c.readableBytes > 0 {
            failed = true
            context.fireErrorCaught(IPCError.malformed("connection closed inside a frame (\(c.readableBytes) bytes)"))
        }
        cumulation = nil
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        var out = context.channel.allocator.buffer(capacity: 9 + frame.body.readableBytes)
        frame.encode(into: &out)
        context.write(wrapOutboundOut(out), promise: promise)
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        failed = true
        cumulation = nil
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
