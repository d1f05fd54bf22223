import MQTTCodec
import NIOCore

/// Progress of a connection's bulk set-up: many SUBSCRIBEs (background subscriptions) or
/// many retained PUBLISHes, each kind with a bounded number awaiting their ack.
final class BulkState {
    var next: Int
    let end: Int
    /// SUBSCRIBE packets (subscriptions) or PUBLISH packets (retained) awaiting their ack.
    var outstanding = 0
    var nextId: UInt16 = 1

    init(first: Int, count: Int) {
        next = first
        end = first + count
    }

    func takeId() -> UInt16 {
        defer { nextId = nextId == .max ? 1 : nextId + 1 }
        return nextId
    }
}

extension MQTTClient {
    /// Seconds a bulk set-up may take before the connection counts as failed.
    static let bulkTimeout = TimeAmount.seconds(240)

    func startBulk() {
        let count = config.subscribeMany?.count ?? config.retainedLoad?.count ?? 0
        let first = config.subscribeMany?.first ?? config.retainedLoad?.first ?? 0
        bulk = BulkState(first: first, count: count)
        timeoutTask?.cancel()
        timeoutTask = eventLoop.scheduleTask(in: Self.bulkTimeout) { [weak self] in
            guard let self, self.state == .subscribing else { return }
            self.fail("timed out in bulk set-up at \(self.bulk?.next ?? 0)")
        }
        if count == 0 { return becomeReady() }
        bulkPump()
    }

    /// Writes SUBSCRIBEs or retained PUBLISHes until the window is full, in one flush.
    func bulkPump() {
        guard let bulk, let context, state == .subscribing else { return }
        var wrote = false
        if let s = config.subscribeMany {
            while bulk.outstanding < s.window && bulk.next < bulk.end {
                let upTo = min(bulk.end, bulk.next + s.perPacket)
                let filters = (bulk.next..<upTo).map(s.filter)
                bulk.next = upTo
                bulk.outstanding += 1
                let p = ClientPackets.subscribe(filters: filters, qos: config.qos, packetId: bulk.takeId())
                context.write(wrapOutboundOut(p.encoded(version: config.version, allocator: context.channel.allocator)),
                              promise: nil)
                wrote = true
            }
        } else if let r = config.retainedLoad {
            var buf = context.channel.allocator.buffer(capacity: 64 * 1024)
            while bulk.outstanding < r.window && bulk.next < bulk.end {
                let p = ClientPackets.retainedPublish(topic: r.topic(bulk.next), payloadSize: r.payloadSize,
                                                      packetId: bulk.takeId(), version: config.version)
                bulk.next += 1
                bulk.outstanding += 1
                p.encode(into: &buf, version: config.version)
            }
            if buf.readableBytes > 0 {
                context.write(wrapOutboundOut(buf), promise: nil)
                wrote = true
            }
        }
        if wrote { context.flush() }
    }

    /// A SUBACK or PUBACK of the bulk set-up.
    func bulkAcked() {
        guard let bulk else { return }
        bulk.outstanding -= 1
        if bulk.next >= bulk.end && bulk.outstanding == 0 {
            self.bulk = nil
            becomeReady()
        } else if bulk.outstanding * 2 <= (config.subscribeMany?.window ?? config.retainedLoad?.window ?? 1) {
            bulkPump()
        }
    }

    /// Fails the wait for `config.receiveTarget` messages after `timeout` seconds, unless
    /// they arrived. Runs on the loop.
    func failReceiving(after timeout: Double) {
        eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) { [weak self] in
            guard let self, let p = self.targetReached else { return }
            self.targetReached = nil
            p.fail(BenchError.setup("received \(self.receivedLocal) of \(self.receiveTarget) in \(timeout) s"))
        }
    }
}
