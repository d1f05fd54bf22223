import MQTTCodec
import NIOCore

/// One MQTT client connection: CONNECT, optional SUBSCRIBE, then publishing (see
/// Client+Publish.swift) and/or receiving. Frames bytes itself: a received PUBLISH is read
/// in place (timestamp and publisher index only, no topic string is built) so the generator
/// spends as little CPU per message as possible; other packets go through MQTTCodec.
/// Everything runs on the channel's event loop.
final class MQTTClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State { case connecting, subscribing, ready, closing, closed }

    let config: ClientConfig
    let bench: BenchContext
    let counters: LoopCounters
    let eventLoop: EventLoop
    /// Succeeds at CONNACK (publishers) or SUBACK (subscribers); fails on refusal or close.
    let ready: EventLoopPromise<Void>

    var state = State.connecting
    var context: ChannelHandlerContext?
    private var cumulation: ByteBuffer?
    /// Bytes of a PUBLISH's payload still to come and to drop: a PUBLISH is counted as soon
    /// as its header and the first bytes of its payload (timestamp, publisher, sequence) are in.
    private var skip = 0
    /// Acks to write at the end of the read.
    private var pendingOut: ByteBuffer?
    private var decoder: MQTTDecoder
    private var pingTask: RepeatedTask?
    var timeoutTask: Scheduled<Void>?
    /// Server's Receive Maximum (5.0).
    var serverReceiveMaximum = Int.max
    /// Set when an ack came in during this read, so the publisher pumps once at its end.
    var ackedInRead = false

    /// Next expected sequence number per publisher index (0 = none seen yet, else seq + 1).
    private var nextSequence: [UInt32] = []

    // Publisher state (Client+Publish.swift).
    var pub: PublisherState?
    /// Many SUBSCRIBEs or retained PUBLISHes in progress (Client+Bulk.swift).
    var bulk: BulkState?
    /// PUBLISH packets this connection received.
    var receivedLocal = 0
    /// Completed with the time the `config.receiveTarget`-th PUBLISH arrived.
    var targetReached: EventLoopPromise<UInt64>?
    let allReceived: EventLoopFuture<UInt64>?
    let receiveTarget: Int

    init(config: ClientConfig, bench: BenchContext, eventLoop: EventLoop) {
        self.config = config
        self.bench = bench
        self.eventLoop = eventLoop
        self.counters = bench.counters(for: eventLoop)
        self.ready = eventLoop.makePromise(of: Void.self)
        self.decoder = MQTTDecoder(version: config.version, maxPacketSize: .max)
        if let p = config.publish { pub = PublisherState(config: p, qos: config.qos, version: config.version) }
        receiveTarget = config.receiveTarget ?? .max
        targetReached = config.receiveTarget == nil ? nil : eventLoop.makePromise(of: UInt64.self)
        allReceived = targetReached?.futureResult
    }

    // MARK: Channel events

    /// Added to a channel that is already up (after a WebSocket upgrade): start at once.
    var startsOnAdd = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if startsOnAdd, context.channel.isActive { channelActive(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        let connect = ClientPackets.connect(config).encoded(version: config.version, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(connect), promise: nil)
        timeoutTask = eventLoop.scheduleTask(in: .milliseconds(Int64(config.connectTimeout * 1000))) { [weak self] in
            guard let self, self.state == .connecting || self.state == .subscribing else { return }
            self.fail("timed out waiting for \(self.state == .connecting ? "CONNACK" : "SUBACK")")
        }
        if config.keepalive > 0 {
            let every = TimeAmount.milliseconds(Int64(config.keepalive) * 500)
            pingTask = eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { [weak self] _ in
                guard let self, let ctx = self.context, self.state == .ready else { return }
                var b = ctx.channel.allocator.buffer(capacity: 2)
                b.writeBytes(ClientPackets.pingreq)
                ctx.writeAndFlush(self.wrapOutboundOut(b), promise: nil)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .connecting, .subscribing:
            fail("connection closed before \(state == .connecting ? "CONNACK" : "SUBACK")", close: false)
        case .ready:
            counters.c.disconnects += 1
        case .closing, .closed:
            break
        }
        state = .closed
        pingTask?.cancel()
        timeoutTask?.cancel()
        pub?.stop()
        if let p = targetReached {
            targetReached = nil
            p.fail(BenchError.setup("connection closed after \(receivedLocal) of \(receiveTarget) messages"))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if state == .connecting || state == .subscribing {
            fail("\(error)")
        } else if state == .ready {
            counters.c.protocolErrors += 1
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump() }
        context.fireChannelWritabilityChanged()
    }

    func fail(_ why: String, close: Bool = true) {
        if state == .connecting || state == .subscribing {
            counters.c.connectErrors += 1
            ready.fail(BenchError.connect(config.clientId, why))
        }
        state = .closed
        timeoutTask?.cancel()
        if close { context?.close(promise: nil) }
    }

    /// The connection was never made (the handler saw no channel): fails what waits on it.
    func abandon(_ error: Error) {
        state = .closed
        ready.fail(error)
        if let p = targetReached {
            targetReached = nil
            p.fail(error)
        }
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        do {
            while true {
                // The rest of a PUBLISH already counted from its first bytes: dropped unread.
                if skip > 0 {
                    let n = min(skip, input.readableBytes)
                    input.moveReaderIndex(forwardBy: n)
                    skip -= n
                }
                guard input.readableBytes > 0 else { return }
                guard var c = cumulation else { break }
                // A packet's start straddled the last read: complete it from this one in small
                // steps, so only headers are copied (a large payload is skipped, not copied).
                cumulation = nil
                var chunk = input.readSlice(length: min(input.readableBytes, Self.cumulationStep))!
                c.writeBuffer(&chunk)
                try frames(&c)
                if c.readableBytes > 0 { cumulation = c }
            }
            try frames(&input)
        } catch {
            counters.c.protocolErrors += 1
            context.close(promise: nil)
            return
        }
        if input.readableBytes > 0 {
            // A copy of the start of the next packet (its header, or a small packet's part):
            // the read buffer is not pinned by it.
            var c = context.channel.allocator.buffer(capacity: max(input.readableBytes, Self.cumulationStep))
            c.writeBuffer(&input)
            cumulation = c
        }
    }

    /// Bytes taken from a read at a time to complete a packet that straddled two reads.
    static let cumulationStep = 512

    func channelReadComplete(context: ChannelHandlerContext) {
        if var out = pendingOut, out.readableBytes > 0 {
            pendingOut = nil
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            out.clear()
        }
        if ackedInRead {
            ackedInRead = false
            pump()
        }
        context.fireChannelReadComplete()
    }

    /// Handles every complete packet in `b`.
    private func frames(_ b: inout ByteBuffer) throws {
        let now = monotonicNanos()
        let measuring = bench.measuring.load(ordering: .relaxed)
        let flows = bench.flows
        while true {
            let start = b.readerIndex
            guard let first = b.getInteger(at: start, as: UInt8.self) else { return }
            var length = 0
            var multiplier = 1
            var i = 1
            while true {
                guard let byte = b.getInteger(at: start + i, as: UInt8.self) else { return }
                length += Int(byte & 0x7F) * multiplier
                i += 1
                if byte & 0x80 == 0 { break }
                if i == 5 { throw BenchError.protocolViolation("remaining length longer than 4 bytes") }
                multiplier *= 128
            }
            let total = i + length
            if first >> 4 == PacketType.publish.rawValue {
                // Counted from its first bytes: the payload after the bench's fields is never read.
                let available = min(total, b.readableBytes)
                guard try receivePublish(b, first: first, bodyStart: start + i, end: start + total,
                                         available: start + available, now: now, measuring: measuring,
                                         flows: flows) else { return }
                if available < total {
                    skip = total - available
                    b.moveReaderIndex(forwardBy: available)
                    return
                }
            } else {
                guard b.readableBytes >= total else { return }
                var slice = b.getSlice(at: start, length: total)!
                if let packet = try decoder.decode(buffer: &slice) { handle(packet) }
            }
            b.moveReaderIndex(forwardBy: total)
        }
    }

    /// Counts one PUBLISH whose bytes up to `available` are in `b`; false (nothing done) when
    /// its header and the payload's bench fields are not all in yet.
    @inline(__always)
    private func receivePublish(_ b: ByteBuffer, first: UInt8, bodyStart: Int, end: Int, available: Int, now: UInt64,
                                measuring: Bool, flows: [PublisherFlow]) throws -> Bool {
        let qos = (first >> 1) & 0x03
        let complete = available >= end
        // A field past what has arrived: wait for more, or, in a complete packet, malformed.
        func missing(_ what: String) throws -> Bool {
            if complete { throw BenchError.protocolViolation(what) }
            return false
        }
        guard let topicLength = b.getInteger(at: bodyStart, as: UInt16.self) else {
            return try missing("PUBLISH without a topic")
        }
        var p = bodyStart + 2 + Int(topicLength)
        var id: UInt16 = 0
        if qos > 0 {
            guard let v = b.getInteger(at: p, as: UInt16.self) else { return try missing("PUBLISH without a packet id") }
            id = v
            p += 2
        }
        if config.version == .v5 {
            var propLength = 0
            var multiplier = 1
            while true {
                guard let byte = b.getInteger(at: p, as: UInt8.self) else { return try missing("PUBLISH without properties") }
                p += 1
                propLength += Int(byte & 0x7F) * multiplier
                if byte & 0x80 == 0 { break }
                multiplier *= 128
            }
            p += propLength
        }
        guard p <= end else { throw BenchError.protocolViolation("PUBLISH shorter than its headers") }
        // Everything read below lies before the end of the payload's bench fields.
        if !complete && available < p + BenchPayload.minimumSize { return false }
        counters.c.received += 1
        receivedLocal += 1
        if receivedLocal == receiveTarget, let p = targetReached {
            targetReached = nil
            p.succeed(now)
        }
        if first & 0x08 != 0 { counters.c.duplicates += 1 }
        if end - p >= BenchPayload.minimumSize {
            let ts = b.getInteger(at: p + BenchPayload.timestampOffset, as: UInt64.self)!
            if measuring && now >= ts { counters.c.latency.record(now - ts) }
            let publisher = Int(b.getInteger(at: p + BenchPayload.publisherOffset, as: UInt32.self)!)
            let sequence = b.getInteger(at: p + BenchPayload.sequenceOffset, as: UInt32.self)!
            checkSequence(publisher: publisher, sequence: sequence, inProcess: publisher < flows.count)
            if publisher < flows.count { flows[publisher].delivered() }
        }
        if qos == 1 {
            queueAck(0x40, id: id)
        } else if qos == 2 {
            queueAck(0x50, id: id)
        }
        return true
    }

    /// Counts gaps (messages skipped) and late messages (behind a later one), per publisher.
    /// `nextSequence` holds the expected next number + 1; 0 means none seen yet.
    @inline(__always)
    private func checkSequence(publisher: Int, sequence: UInt32, inProcess: Bool) {
        guard publisher < 1 << 20 else { return }
        if publisher >= nextSequence.count {
            nextSequence.append(contentsOf: repeatElement(0, count: publisher + 1 - nextSequence.count))
        }
        let stored = nextSequence[publisher]
        if stored == 0 {
            // A publisher of this process starts at 0; another process's, anywhere.
            if inProcess && sequence > 0 { counters.c.gaps += Int(sequence) }
            nextSequence[publisher] = sequence &+ 2
            return
        }
        let want = stored &- 1
        if sequence == want {
            nextSequence[publisher] = sequence &+ 2
        } else if sequence > want {
            counters.c.gaps += Int(sequence &- want)
            nextSequence[publisher] = sequence &+ 2
        } else {
            counters.c.outOfOrder += 1
        }
    }

    private func queueAck(_ first: UInt8, id: UInt16) {
        if pendingOut == nil { pendingOut = context?.channel.allocator.buffer(capacity: 256) }
        ClientPackets.writeAck(first, id: id, into: &pendingOut!)
    }

    private func handle(_ packet: Packet) {
        switch packet {
        case .connack(let c):
            guard state == .connecting else { return }
            guard c.reasonCode == .success else {
                return fail("CONNACK refused: \(c.reasonCode)")
            }
            if let rm = c.properties.receiveMaximum { serverReceiveMaximum = Int(rm) }
            counters.c.connected += 1
            if config.subscribeMany != nil || config.retainedLoad != nil {
                state = .subscribing
                startBulk()
            } else if let filter = config.subscribe {
                state = .subscribing
                send(ClientPackets.subscribe(filter: filter, qos: config.qos))
            } else {
                becomeReady()
            }
        case .suback(let s):
            guard state == .subscribing else { return }
            if let bad = s.reasonCodes.first(where: { $0.rawValue >= 0x80 }) {
                return fail("SUBACK refused: \(bad)")
            }
            if bulk != nil { return bulkAcked() }
            becomeReady()
        case .puback(let a):
            if bulk != nil && state == .subscribing { return bulkAcked() }
            publisherAcked(a.packetId)
        case .pubrec(let a):
            queueAck(0x62, id: a.packetId)
        case .pubcomp(let a):
            publisherAcked(a.packetId)
        case .pubrel(let a):
            queueAck(0x70, id: a.packetId)
        case .pingresp:
            break
        case .disconnect(let d):
            counters.c.protocolErrors += 1
            if state != .ready { fail("DISCONNECT \(d.reasonCode)") }
        default:
            counters.c.protocolErrors += 1
        }
    }

    func becomeReady() {
        state = .ready
        timeoutTask?.cancel()
        ready.succeed(())
    }

    func send(_ packet: Packet) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(packet.encoded(version: config.version, allocator: context.channel.allocator)),
                              promise: nil)
    }

    /// DISCONNECT and close. Runs on the loop.
    func disconnect() -> EventLoopFuture<Void> {
        pub?.stop()
        pingTask?.cancel()
        guard let context, state != .closed else { return eventLoop.makeSucceededVoidFuture() }
        state = .closing
        var b = context.channel.allocator.buffer(capacity: 2)
        b.writeBytes(ClientPackets.disconnect)
        context.writeAndFlush(wrapOutboundOut(b), promise: nil)
        let p = eventLoop.makePromise(of: Void.self)
        context.close(promise: p)
        return p.futureResult.recover { _ in }
    }
}

enum BenchError: Error, CustomStringConvertible {
    case connect(String, String)
    case protocolViolation(String)
    case setup(String)

    var description: String {
        switch self {
        case .connect(let id, let why): return "\(id): \(why)"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .setup(let why): return why
        }
    }
}
