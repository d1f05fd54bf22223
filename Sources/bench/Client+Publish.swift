import Atomics
import MQTTCodec
import NIOCore

/// A publisher's state, confined to its connection's loop.
final class PublisherState {
    let config: PublishConfig
    let qos: QoS
    let template: ByteBuffer
    let packetIdOffset: Int?
    let payloadOffset: Int
    /// Messages per write: 64, or fewer for large payloads (about 64 KB per write).
    let maxBatch: Int
    var flow: PublisherFlow?
    var running = false
    var sequence: UInt32 = 0
    var sentLocal = 0
    var startNanos: UInt64 = 0
    var inflight = 0
    private var inUse: [Bool] = []
    private var nextId: UInt16 = 1
    var tick: RepeatedTask?
    var pumpQueued = false
    /// Set when the in-flight limit stopped the last pump: acks then restart it.
    var waitingForAcks = false
    /// In-flight limit in force (QoS 1/2).
    var inflightLimit = Int.max
    var lastReceived = -1
    var lastProgress: UInt64 = 0

    init(config: PublishConfig, qos: QoS, version: ProtocolVersion) {
        self.config = config
        self.qos = qos
        let t = ClientPackets.publishTemplate(topic: config.topic, qos: qos, size: config.payloadSize, version: version)
        template = t.template
        packetIdOffset = t.packetIdOffset
        payloadOffset = t.payloadOffset
        maxBatch = max(1, min(64, 65_536 / t.template.readableBytes))
        let head = t.payloadOffset + BenchPayload.minimumSize
        sharedTail = t.template.readableBytes >= Self.gatherAbove && t.template.readableBytes > head
            ? t.template.getSlice(at: t.template.readerIndex + head, length: t.template.readableBytes - head) : nil
    }

    /// Messages of at least this many bytes are written as a header and a shared tail.
    static let gatherAbove = 4096
    /// The template's bytes after the bench fields, for messages of `gatherAbove` bytes or more.
    let sharedTail: ByteBuffer?

    func stop() {
        running = false
        tick?.cancel()
        tick = nil
    }

    func allocateId() -> UInt16 {
        if inUse.isEmpty { inUse = Array(repeating: false, count: 65_536) }
        while inUse[Int(nextId)] { nextId = nextId == .max ? 1 : nextId + 1 }
        let id = nextId
        inUse[Int(id)] = true
        inflight += 1
        nextId = nextId == .max ? 1 : nextId + 1
        return id
    }

    /// True when `id` was in flight.
    func release(_ id: UInt16) -> Bool {
        guard !inUse.isEmpty, inUse[Int(id)] else { return false }
        inUse[Int(id)] = false
        inflight -= 1
        return true
    }
}

extension PublisherFlow {
    /// Messages this publisher may still send before its window is full (at least one
    /// message whenever nothing is outstanding, however large the fan-out).
    func credit(forgiven: Int) -> Int {
        let out = outstanding(forgiven: forgiven)
        if out <= 0 { return max(1, window / fanout) }
        return (window - out) / fanout
    }
}

extension MQTTClient {
    /// Begins publishing. Runs on the loop.
    func startPublishing() {
        guard let pub, state == .ready, !pub.running else { return }
        pub.running = true
        pub.startNanos = monotonicNanos()
        pub.lastProgress = pub.startNanos
        if let flow = pub.flow { flow.wake = { [weak self] in self?.pump() } }
        // A fixed rate is paced by a tick of one message's time (1 ms to 1 s: thousands of
        // slow publishers do not tick every millisecond), the first at a random point of it so
        // they do not all send at once, from the loop's one `Pacer`; the closed loop ticks
        // only to detect stalls.
        if pub.config.rate > 0 {
            let interval = UInt64(min(1e9, max(1e6, 1e9 / pub.config.rate)))
            counters.pacer.add(self, first: pub.startNanos + UInt64.random(in: 1...interval), interval: interval)
        } else {
            pub.tick = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { [weak self] _ in
                self?.onTick()
            }
        }
        pump()
    }

    /// The `Pacer`'s tick; false once this publisher has stopped (it is then dropped).
    func pacedTick() -> Bool {
        guard let pub, pub.running else { return false }
        onTick()
        return true
    }

    private func onTick() {
        guard let pub, pub.running else { return }
        if let flow = pub.flow {
            // A QoS 0 message the broker dropped never comes back: after 500 ms without a
            // delivery while blocked, write the window off and carry on (counted as a stall).
            let now = monotonicNanos()
            let r = flow.received.load(ordering: .relaxed)
            if r != pub.lastReceived {
                pub.lastReceived = r
                pub.lastProgress = now
            } else if flow.blocked.load(ordering: .relaxed), now - pub.lastProgress > 500_000_000 {
                let f = flow.forgiven.load(ordering: .relaxed)
                flow.forgiven.wrappingIncrement(by: max(0, flow.outstanding(forgiven: f)), ordering: .sequentiallyConsistent)
                flow.blocked.store(false, ordering: .sequentiallyConsistent)
                counters.c.stalls += 1
                pub.lastProgress = now
            }
        }
        pump()
    }

    private func schedulePump() {
        guard let pub, !pub.pumpQueued else { return }
        pub.pumpQueued = true
        eventLoop.execute { [self] in
            pub.pumpQueued = false
            pump()
        }
    }

    /// Sends as many messages as the window, the in-flight limit, the rate and the channel's
    /// writability allow, in one write.
    func pump() {
        guard let pub, pub.running, state == .ready, let context, context.channel.isWritable else { return }
        guard bench.publishing.load(ordering: .relaxed) else { return pub.stop() }
        var n = pub.maxBatch
        var limited = false
        var flowLimited = false
        if let flow = pub.flow {
            let credit = flow.credit(forgiven: flow.forgiven.load(ordering: .relaxed))
            if credit <= n {
                n = credit
                flowLimited = true
            }
        }
        pub.waitingForAcks = false
        if pub.qos != .atMostOnce {
            let limit = min(pub.config.inflight > 0 ? pub.config.inflight : 65_000, serverReceiveMaximum, 65_000)
            pub.inflightLimit = limit
            if limit - pub.inflight < n {
                n = limit - pub.inflight
                limited = true
                pub.waitingForAcks = true
            }
        }
        var rateLimited = false
        if pub.config.rate > 0 {
            let elapsed = Double(monotonicNanos() - pub.startNanos) / 1e9
            let due = Int(pub.config.rate * elapsed) - pub.sentLocal
            if due < n {
                n = due
                limited = true
                rateLimited = true
            }
        }
        if n > 0 { writeBatch(n, pub: pub, context: context) }
        // Held back by the rate: the next tick pumps (waking on deliveries would only spin).
        if flowLimited && !rateLimited, let flow = pub.flow {
            // Block, then look again: a delivery that arrived in between must not be missed.
            flow.blocked.store(true, ordering: .sequentiallyConsistent)
            if flow.credit(forgiven: flow.forgiven.load(ordering: .sequentiallyConsistent)) > 0,
               flow.blocked.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
                schedulePump()
            }
        } else if !limited && n > 0 {
            // Closed loop with credit left: go on after the loop has served reads.
            schedulePump()
        }
    }

    private func writeBatch(_ n: Int, pub: PublisherState, context: ChannelHandlerContext) {
        if let tail = pub.sharedTail { return writeGathered(n, pub: pub, tail: tail, context: context) }
        let size = pub.template.readableBytes
        var buf = context.channel.allocator.buffer(capacity: n * size)
        appendStamped(n, pub: pub, from: pub.template, into: &buf)
        pub.sentLocal += n
        counters.c.sent += n
        pub.flow?.sent.wrappingIncrement(by: n, ordering: .sequentiallyConsistent)
        context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
    }

    /// Appends `n` copies of `template` (the whole message, or its head up to and including
    /// the bench fields) to `buf`, each stamped with the send time, publisher, sequence number
    /// and, for QoS 1/2, a packet id.
    private func appendStamped(_ n: Int, pub: PublisherState, from template: ByteBuffer, into buf: inout ByteBuffer) {
        let now = monotonicNanos()
        let publisher = UInt32(truncatingIfNeeded: pub.config.index)
        for _ in 0..<n {
            let start = buf.writerIndex
            buf.writeImmutableBuffer(template)
            let p = start + pub.payloadOffset
            buf.setInteger(now, at: p + BenchPayload.timestampOffset)
            buf.setInteger(publisher, at: p + BenchPayload.publisherOffset)
            buf.setInteger(pub.sequence, at: p + BenchPayload.sequenceOffset)
            pub.sequence &+= 1
            if let io = pub.packetIdOffset { buf.setInteger(pub.allocateId(), at: start + io) }
        }
    }

    /// A large message is its header and bench fields (written per message into one small
    /// buffer) followed by the template's constant rest, the same bytes every time: both go
    /// to the socket as slices in one writev, so no payload is copied or allocated per message.
    private func writeGathered(_ n: Int, pub: PublisherState, tail: ByteBuffer, context: ChannelHandlerContext) {
        let headSize = pub.template.readableBytes - tail.readableBytes
        var heads = context.channel.allocator.buffer(capacity: n * headSize)
        appendStamped(n, pub: pub, from: pub.template.getSlice(at: pub.template.readerIndex, length: headSize)!,
                      into: &heads)
        for k in 0..<n {
            context.write(wrapOutboundOut(heads.getSlice(at: k * headSize, length: headSize)!), promise: nil)
            context.write(wrapOutboundOut(tail), promise: nil)
        }
        pub.sentLocal += n
        counters.c.sent += n
        pub.flow?.sent.wrappingIncrement(by: n, ordering: .sequentiallyConsistent)
        context.flush()
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for one of this publisher's messages.
    func publisherAcked(_ id: UInt16) {
        guard let pub, pub.release(id) else { return }
        counters.c.acked += 1
        // Restart a pump the in-flight limit stopped once half the limit (or a full batch)
        // is free again; in the end-to-end closed loop the window, not acks, paces sending.
        if pub.waitingForAcks && pub.inflightLimit - pub.inflight >= max(1, min(pub.maxBatch, pub.inflightLimit / 2)) {
            ackedInRead = true
        }
    }
}
