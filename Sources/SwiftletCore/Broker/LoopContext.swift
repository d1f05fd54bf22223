import SwiftletConfig
import SwiftletStore
import SwiftletRouting
import MQTTCodec
import NIOCore

/// Counters of one event loop, summed by $SYS. Plain integers: only the owning loop writes.
public struct LoopStats: Sendable {
    public var messagesReceived = 0
    public var messagesSent = 0
    public var messagesDropped = 0
    public var messagesRetained = 0
    public var bytesReceived = 0
    public var bytesSent = 0
    public var packetsReceived = 0
    public var packetsSent = 0
    /// ACL answers served from connections' own caches, by provider slot (`ProviderStats.slot`).
    public var aclHits: [Int] = []

    @inline(__always)
    mutating func countACLHit(slot: Int) {
        guard slot >= 0 else { return }
        if slot >= aclHits.count { aclHits.append(contentsOf: repeatElement(0, count: slot + 1 - aclHits.count)) }
        aclHits[slot] += 1
    }

    public static func + (a: LoopStats, b: LoopStats) -> LoopStats {
        var r = a
        r.messagesReceived += b.messagesReceived
        r.messagesSent += b.messagesSent
        r.messagesDropped += b.messagesDropped
        r.messagesRetained += b.messagesRetained
        r.bytesReceived += b.bytesReceived
        r.bytesSent += b.bytesSent
        r.packetsReceived += b.packetsReceived
        r.packetsSent += b.packetsSent
        if r.aclHits.count < b.aclHits.count {
            r.aclHits.append(contentsOf: repeatElement(0, count: b.aclHits.count - r.aclHits.count))
        }
        for (i, n) in b.aclHits.enumerated() { r.aclHits[i] += n }
        return r
    }
}

/// The broker's loops, made once at start-up: each `LoopContext` reaches its peers through
/// it, and the router walks it to change every replica.
final class LoopTable: @unchecked Sendable {
    private(set) var loops: [LoopContext] = []
    private var indexByID: [ObjectIdentifier: Int] = [:]

    init(group: EventLoopGroup, sharedStrategy: SharedStrategy) {
        let all = Array(group.makeIterator())
        for (i, el) in all.enumerated() {
            loops.append(LoopContext(index: i, eventLoop: el, loopCount: all.count, table: self, sharedStrategy: sharedStrategy))
            indexByID[ObjectIdentifier(el)] = i
        }
    }

    func context(for el: EventLoop) -> LoopContext { loops[indexByID[ObjectIdentifier(el)]!] }
}

/// Everything one event loop owns: its replica of the subscription trie, the outboxes of
/// deliveries bound for other loops, connections with unflushed writes, and counters.
///
/// The hot path: `route` matches on the publisher's loop, delivers locally in place and
/// appends remote deliveries to per-loop outboxes; one task per loop tick hands each outbox
/// over in a single hop and flushes every connection written to in that tick.
final class LoopContext: @unchecked Sendable {
    let index: Int
    let eventLoop: EventLoop
    let trie = SubscriptionTrie()
    /// Every loop of the broker, this one included: where remote deliveries go.
    unowned let table: LoopTable
    /// How shared groups pick a member; `reload config` sets it on this loop.
    var sharedStrategy: SharedStrategy
    var stats = LoopStats()
    /// Keep alive, CONNECT idle timeout and retry timers of this loop's connections.
    lazy var connectionSweep = ConnectionSweep(eventLoop: eventLoop)

    private var outboxes: [[Delivery]]
    private var flushScheduled = false
    private var dirty: [MQTTConnectionHandler] = []
    /// The other half of `dirty`: swapped in while a flush walks the list, so neither array
    /// is copied or reallocated per tick.
    private var flushing: [MQTTConnectionHandler] = []
    /// The end-of-tick task, made once: scheduling it allocates no closure context.
    private lazy var flushTask: @Sendable () -> Void = { [unowned self] in self.flushNow() }
    private var scratch: [Delivery] = []
    /// Where a session's delivery is in `scratch`, so that overlapping subscriptions make one
    /// delivery: the indices of the non-shared deliveries, searched in order while there are
    /// at most `scratchListLimit` (most messages match one or a few sessions: no hashing),
    /// and a dictionary from there on (`scratchIndex`, empty until then).
    private var scratchList: [Int] = []
    private var scratchIndex: [ObjectIdentifier: Int] = [:]
    static let scratchListLimit = 8
    private var random = SystemRandomNumberGenerator()
    /// Next durable-store message id of this loop (ids are partitioned by loop, no sharing).
    var nextStoreId: Int64 = 0
    private var loopCount: Int64 = 1

    /// A store id unique across loops and restarts (see `Broker.start`).
    /// Deliveries waiting in this loop's outboxes and connections waiting for the tick's
    /// flush (recon's queue depth; on the loop).
    var pendingWork: Int { outboxes.reduce(0) { $0 + $1.count } + dirty.count }

    func allocateStoreId() -> Int64 {
        let id = nextStoreId
        nextStoreId += loopCount
        return id
    }

    func setStoreIdBase(_ maxExisting: Int64) {
        nextStoreId = maxExisting + 1 + Int64(index)
    }

    init(index: Int, eventLoop: EventLoop, loopCount: Int, table: LoopTable, sharedStrategy: SharedStrategy) {
        self.index = index
        self.eventLoop = eventLoop
        self.table = table
        self.sharedStrategy = sharedStrategy
        self.outboxes = Array(repeating: [], count: loopCount)
        self.loopCount = Int64(loopCount)
        self.nextStoreId = Int64(index) + 1
    }

    // MARK: Routing

    /// Routes a message to every matching subscription. Must run on this loop.
    /// Returns the number of sessions it was addressed to.
    @discardableResult
    func route(_ message: Message) -> Int {
        var none: [StoreOp]? = nil
        return route(message, ops: &none)
    }

    /// Routes and, when `ops` is non-nil, records QoS 1/2 deliveries to persistent sessions
    /// as store ops (the caller holds the publisher's acknowledgement until they commit).
    @discardableResult
    func route(_ message: Message, ops: inout [StoreOp]?) -> Int {
        scratch.removeAll(keepingCapacity: true)
        scratchList.removeAll(keepingCapacity: true)
        if !scratchIndex.isEmpty { scratchIndex.removeAll(keepingCapacity: true) }
        trie.match(topic: message.topic, visit: { entry in
            let o = entry.options
            if o.noLocal && Topic.sameBytes(entry.session.clientId, message.origin) { return }
            let qos = min(message.qos, o.qos)
            let retainFlag = o.retainAsPublished && message.retain
            if let i = scratchSlot(of: entry.session) {
                // Overlapping subscriptions: one delivery, highest QoS, every identifier.
                if qos > scratch[i].qos { scratch[i].qos = qos }
                if retainFlag { scratch[i].retainFlag = true }
                if let sid = o.subscriptionIdentifier { scratch[i].subscriptionIds.append(sid) }
            } else {
                scratchRemember(entry.session, at: scratch.count)
                scratch.append(Delivery(session: entry.session, message: message, qos: qos, retainFlag: retainFlag,
                                        subscriptionIds: o.subscriptionIdentifier.map { [$0] } ?? []))
            }
        }, visitShared: { group in
            guard let entry = pick(group, message: message) else { return }
            let o = entry.options
            scratch.append(Delivery(session: entry.session, message: message, qos: min(message.qos, o.qos),
                                    retainFlag: o.retainAsPublished && message.retain,
                                    subscriptionIds: o.subscriptionIdentifier.map { [$0] } ?? []))
        })
        let n = scratch.count
        if n == 0 { return 0 }
        if ops != nil && message.qos != .atMostOnce && message.storeId != 0 {
            for i in scratch.indices where scratch[i].qos != .atMostOnce && scratch[i].session.persistent.load(ordering: .relaxed) {
                scratch[i].stored = true
                let d = scratch[i]
                ops!.append(.enqueue(clientId: d.session.clientId, message: message, qos: d.qos, retainFlag: d.retainFlag,
                                     subscriptionIds: d.subscriptionIds))
            }
        }
        for d in scratch { dispatch(d) }
        scratch.removeAll(keepingCapacity: true)
        return n
    }

    /// The index in `scratch` of `session`'s non-shared delivery of the message being routed.
    @inline(__always)
    private func scratchSlot(of session: Session) -> Int? {
        if scratchIndex.isEmpty {
            for i in scratchList where scratch[i].session === session { return i }
            return nil
        }
        return scratchIndex[ObjectIdentifier(session)]
    }

    private func scratchRemember(_ session: Session, at i: Int) {
        if scratchIndex.isEmpty {
            if scratchList.count < Self.scratchListLimit { return scratchList.append(i) }
            for j in scratchList { scratchIndex[ObjectIdentifier(scratch[j].session)] = j }
        }
        scratchIndex[ObjectIdentifier(session)] = i
    }

    private func pick(_ g: SharedGroup, message: Message) -> SubscriberEntry? {
        let members = g.members
        if members.isEmpty { return nil }
        if members.count == 1 { return members[0] }
        let start: Int
        switch sharedStrategy {
        case .random: start = Int.random(in: 0..<members.count, using: &random)
        case .round_robin:
            start = g.next % members.count
            g.next = (start + 1) % members.count
        case .sticky:
            if let s = g.sticky, let i = members.firstIndex(where: { ObjectIdentifier($0.session) == s }),
               members[i].session.online.load(ordering: .relaxed) {
                return members[i]
            }
            start = Int.random(in: 0..<members.count, using: &random)
        case .hash_clientid: start = Int(UInt(bitPattern: message.origin.hashValue) % UInt(members.count))
        case .hash_topic: start = Int(UInt(bitPattern: message.topic.hashValue) % UInt(members.count))
        }
        // Prefer a connected member; fall back to the chosen one (its session queues).
        for k in 0..<members.count {
            let m = members[(start + k) % members.count]
            if m.session.online.load(ordering: .relaxed) {
                if sharedStrategy == .sticky { g.sticky = ObjectIdentifier(m.session) }
                return m
            }
        }
        return members[start]
    }

    /// Delivers in place when the session lives here, else batches it for its loop.
    func dispatch(_ d: Delivery) {
        let target = d.session.homeLoop.load(ordering: .relaxed)
        if target == index {
            d.session.deliver(d, ctx: self)
        } else {
            outboxes[target].append(d)
            scheduleFlush()
        }
    }

    /// A batch handed over from another loop.
    func receive(_ batch: [Delivery]) {
        for d in batch { dispatch(d) }
        flushNow()
    }

    // MARK: Outgoing buffers

    /// Flushed connections' buffers kept for reuse (`takeOutBuffer`): at most
    /// `maxSpareBuffers`, each of at most `maxSpareCapacity` bytes, per loop.
    private var spareOut: [ByteBuffer] = []
    static let maxSpareBuffers = 16
    static let maxSpareCapacity = 16 * 1024

    /// A cleared buffer for a connection's coalesced packets, a spare one when there is.
    /// A connection hands its buffer to NIO at flush; NIO writes a small one at once and
    /// drops its reference, so `clear()` then reuses the storage. When NIO still holds it (a
    /// partial write), `clear()` allocates new storage, as a new buffer would have. Each
    /// buffer is two allocations (storage object and bytes): four of the seven a forwarded
    /// QoS 1 message cost.
    func takeOutBuffer(_ allocator: ByteBufferAllocator) -> ByteBuffer {
        if var b = spareOut.popLast() {
            b.clear()
            return b
        }
        return allocator.buffer(capacity: 512)
    }

    /// Keeps a flushed buffer for `takeOutBuffer` (it is only read from here on).
    func returnOutBuffer(_ b: ByteBuffer) {
        if spareOut.count < Self.maxSpareBuffers && b.capacity <= Self.maxSpareCapacity {
            spareOut.append(b)
        }
    }

    // MARK: Flush coalescing

    func markDirty(_ c: MQTTConnectionHandler) {
        dirty.append(c)
        scheduleFlush()
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.execute(flushTask)
    }

    /// Hands outboxes to their loops (one hop per loop) and flushes dirty connections.
    func flushNow() {
        flushScheduled = false
        for t in outboxes.indices where !outboxes[t].isEmpty {
            let batch = outboxes[t]
            outboxes[t] = []
            let target = table.loops[t]
            target.eventLoop.execute { target.receive(batch) }
        }
        if !dirty.isEmpty {
            swap(&dirty, &flushing)
            for c in flushing { c.flushIfDirty() }
            flushing.removeAll(keepingCapacity: true)
        }
    }
}
