import NIOCore

/// Sits right behind `NIOSSLServerHandler` and hands it the writes of one flush as one buffer.
///
/// swift-nio-ssl turns every buffered write into its own `SSL_write`, so its own TLS record:
/// a flush of 50 forwarded 80-byte PUBLISHes became 50 records, each with a 22-byte header
/// and tag, its own AEAD seal and its own bookkeeping (in the TLS one-to-one profile,
/// `SSL_write` was 10 % of the broker's CPU). Gathered, the same flush is one record per
/// 16 KiB. The copy costs less than the records it saves; a write of a record or more, or
/// one with a promise, passes through as it is (after what is gathered, so order holds).
/// Nothing is kept between flushes: an idle connection holds no buffer here. (The writes are
/// `IOData`: the HTTP encoder of a wss listener writes that before the upgrade.)
final class TLSRecordCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// TLS's largest record plaintext: gathering more would only be split again.
    static let recordSize = 16_384

    /// The first write of this flush, kept as it is until a second one comes.
    private var first: ByteBuffer?
    /// The writes of this flush gathered (from the second write on).
    private var gathered: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard promise == nil, case .byteBuffer(var bytes) = unwrapOutboundIn(data), bytes.readableBytes < Self.recordSize else {
            passPending(context)
            return context.write(data, promise: promise)
        }
        if var g = gathered {
            gathered = nil
            if g.readableBytes + bytes.readableBytes > Self.recordSize {
                context.write(wrapOutboundOut(.byteBuffer(g)), promise: nil)
                first = bytes
                return
            }
            g.writeBuffer(&bytes)
            gathered = g
        } else if var f = first {
            first = nil
            guard f.readableBytes + bytes.readableBytes <= Self.recordSize else {
                context.write(wrapOutboundOut(.byteBuffer(f)), promise: nil)
                first = bytes
                return
            }
            var g = context.channel.allocator.buffer(capacity: Self.recordSize)
            g.writeBuffer(&f)
            g.writeBuffer(&bytes)
            gathered = g
        } else {
            first = bytes
        }
    }

    func flush(context: ChannelHandlerContext) {
        passPending(context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What was written before a close goes out before it (NIOSSL sends close_notify after).
        passPending(context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        passPending(context)
    }

    private func passPending(_ context: ChannelHandlerContext) {
        if let f = first {
            first = nil
            context.write(wrapOutboundOut(.byteBuffer(f)), promise: nil)
        } else if let g = gathered {
            gathered = nil
            context.write(wrapOutboundOut(.byteBuffer(g)), promise: nil)
        }
    }
}
