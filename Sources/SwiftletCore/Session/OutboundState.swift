import MQTTProtocol
import DequeModule
import MQTTCodec
import NIOCore

/// The outbound half of a session: in-flight window, queue and packet identifiers.
/// A pure state machine: methods return what to send; the connection sends it.
public struct OutboundState {
    public enum EnqueueResult {
        /// Send now, with this packet id for QoS > 0.
        case send(Delivery, packetId: UInt16?)
        case queued
        /// Dropped: the oldest queued message made room (`evicted`) or this one was refused.
        case dropped(Delivery)
        case queuedEvicting(Delivery)
    }

    public var window: Int
    public var maxQueue: Int
    public var queueQoS0: Bool
    /// Payload bytes allowed in the queue (0: unlimited).
    public var maxQueueBytes: Int = 0
    public private(set) var queuedBytes = 0
    public private(set) var inflight: [UInt16: InflightEntry] = [:]
    public private(set) var queue: Deque<Delivery> = []
    private var nextId: UInt16 = 1
    private var seq: UInt64 = 0

    public init(window: Int, maxQueue: Int, queueQoS0: Bool) {
        self.window = max(1, window)
        self.maxQueue = maxQueue
        self.queueQoS0 = queueQoS0
    }

    public var inflightCount: Int { inflight.count }

    private mutating func allocateId() -> UInt16 {
        while true {
            let id = nextId
            nextId = nextId == UInt16.max ? 1 : nextId + 1
            if inflight[id] == nil { return id }
        }
    }

    /// A message for this session. `online` and `writable` describe the connection.
    public mutating func enqueue(_ d: Delivery, online: Bool, writable: Bool, now: NIODeadline) -> EnqueueResult {
        if online && writable && queue.isEmpty {
            if d.qos == .atMostOnce { return .send(d, packetId: nil) }
            if inflight.count < window {
                return .send(d, packetId: track(d, now: now))
            }
        }
        if d.qos == .atMostOnce && (!online ? !queueQoS0 : false) { return .dropped(d) }
        if d.qos == .atMostOnce && online && !writable && !d.retainFlag {
            // A slow consumer loses live QoS 0 rather than growing the queue. Retained
            // messages sent on SUBSCRIBE are the broker's own burst (a `#` subscriber gets the
            // whole store at once): they wait in the queue, bounded like any other, for the
            // socket to drain.
            return .dropped(d)
        }
        if maxQueue == 0 { return .dropped(d) }
        let size = d.message.payload.readableBytes
        if maxQueueBytes > 0 && size > maxQueueBytes { return .dropped(d) }
        if queue.count >= maxQueue || (maxQueueBytes > 0 && queuedBytes + size > maxQueueBytes) {
            let evicted = popFirst()
            append(d)
            return .queuedEvicting(evicted)
        }
        append(d)
        return .queued
    }

    private mutating func append(_ d: Delivery) {
        queue.append(d)
        queuedBytes += d.message.payload.readableBytes
    }

    @discardableResult
    private mutating func popFirst() -> Delivery {
        let d = queue.removeFirst()
        queuedBytes -= d.message.payload.readableBytes
        return d
    }

    private mutating func track(_ d: Delivery, now: NIODeadline) -> UInt16 {
        let id = allocateId()
        seq += 1
        inflight[id] = InflightEntry(packetId: id, delivery: d, phase: .awaitingAck, sentAt: now, seq: seq)
        return id
    }

    /// What `next` takes off the queue.
    public enum DrainStep {
        /// Send now, with this packet id for QoS > 0 (it is in flight from here on).
        case send(Delivery, packetId: UInt16?)
        /// Expired while queued: dropped.
        case expired(Delivery)
    }

    /// The next queued message that may go now, or an expired one; nil when the queue is
    /// empty or the window is full. The session calls it in a loop after an ack or when
    /// the connection is writable again: one step at a time, no arrays built per ack.
    public mutating func next(now: NIODeadline) -> DrainStep? {
        guard let d = queue.first else { return nil }
        if d.message.isExpired(now: now) {
            popFirst()
            return .expired(d)
        }
        if d.qos == .atMostOnce {
            popFirst()
            return .send(d, packetId: nil)
        }
        guard inflight.count < window else { return nil }
        popFirst()
        return .send(d, packetId: track(d, now: now))
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2). Returns false when the id is unknown.
    public mutating func complete(_ id: UInt16) -> Bool {
        inflight.removeValue(forKey: id) != nil
    }

    /// PUBACK/PUBCOMP: removes and returns the entry.
    public mutating func remove(_ id: UInt16) -> InflightEntry? {
        inflight.removeValue(forKey: id)
    }

    /// Restores a message loaded from the durable store, in its stored order.
    public mutating func restore(_ d: Delivery, packetId: UInt16?, released: Bool, now: NIODeadline) {
        guard let id = packetId, id != 0, inflight[id] == nil else {
            append(d)
            return
        }
        seq += 1
        inflight[id] = InflightEntry(packetId: id, delivery: d, phase: released ? .awaitingComp : .awaitingAck, sentAt: now, seq: seq)
    }

    /// PUBREC: the message moves to awaiting PUBCOMP. Returns false when the id is unknown.
    public mutating func received(_ id: UInt16, now: NIODeadline) -> Bool {
        guard var e = inflight[id] else { return false }
        e.phase = .awaitingComp
        e.sentAt = now
        inflight[id] = e
        return true
    }

    /// An acknowledgement a client sent for one of our PUBLISHes.
    public typealias Ack = AckKind
    public typealias AckFit = MQTTProtocol.AckFit

    /// Checks `ack` against the in-flight message with `id`; changes nothing.
    public func fit(_ ack: Ack, _ id: UInt16) -> AckFit {
        guard let e = inflight[id] else { return .unknown }
        switch (ack, e.delivery.qos) {
        case (.puback, .atLeastOnce): return .fits
        // A repeated PUBREC while awaiting PUBCOMP is answered with PUBREL again.
        case (.pubrec, .exactlyOnce): return .fits
        case (.pubcomp, .exactlyOnce): return e.phase == .awaitingComp ? .fits : .breaksFlow
        default: return .breaksFlow
        }
    }

    /// PUBREC with a failure reason code ends the flow (5.0).
    @discardableResult
    public mutating func failed(_ id: UInt16) -> InflightEntry? { inflight.removeValue(forKey: id) }

    /// In-flight messages in the order they were first sent, for redelivery.
    public func inflightInOrder() -> [InflightEntry] {
        inflight.values.sorted { $0.seq < $1.seq }
    }

    /// Entries sent before `deadline`, oldest first, restamped as resent now.
    public mutating func due(before deadline: NIODeadline, now: NIODeadline) -> [InflightEntry] {
        let list = inflight.values.filter { $0.sentAt <= deadline }.sorted { $0.seq < $1.seq }
        for e in list { inflight[e.packetId]?.sentAt = now }
        return list
    }

    public mutating func clear() {
        inflight.removeAll()
        queue.removeAll()
        queuedBytes = 0
    }
}
