import MQTTProtocol
import SwiftletConfig
import SwiftletStore
import SwiftletRouting
import Atomics
import MQTTCodec
import NIOCore

/// The state the broker keeps for one client id. Confined to its home event loop
/// (`homeLoop`), which is the loop of its current connection; the index is atomic so that
/// publishers on other loops can address it, and a delivery that arrives after the session
/// moved is forwarded (see `LoopContext.receive`).
public final class Session: @unchecked Sendable {
    public let clientId: String
    /// `homeLoop`, `online` and `persistent` in one atomic word (three `ManagedAtomic`s were
    /// three objects per session): the loop index above the two flag bits.
    private let shared: ManagedAtomic<Int>
    var homeLoop: SessionLoopIndex { SessionLoopIndex(word: shared) }
    /// Read by shared-subscription dispatch on any loop to prefer connected members.
    var online: SessionFlag { SessionFlag(word: shared, bit: 1) }
    /// True when the session outlives its connection and the durable store is on: its QoS
    /// 1/2 deliveries are recorded. Read by publishers on any loop.
    var persistent: SessionFlag { SessionFlag(word: shared, bit: 2) }
    /// Where its changes are recorded when it is persistent (nil without a durable store).
    let store: DurableStore?

    // Loop-confined state below.
    var connection: MQTTConnectionHandler?
    public internal(set) var protocolVersion: ProtocolVersion
    /// Seconds the session outlives its connection; 0 ends it at disconnect, .max never.
    var expiryInterval: UInt32
    /// By the filter as subscribed; one subscription out of line, a dictionary from two on.
    public internal(set) var subscriptions = SessionSubscriptions()
    var outbound: OutboundState
    /// Inbound QoS 2 packet ids received and not yet released (method A: routed on PUBLISH).
    var awaitingRel: Set<UInt16> = []
    var terminated = false
    /// Out of line (`OfflineState`): allocated when first set, released when all is unset.
    private var offline: OutOfLine<OfflineState>?
    var pendingWill: (will: Will, username: String?)? {
        get { offline?.value.pendingWill }
        set { offline.update { $0.pendingWill = newValue } }
    }
    var willTask: Scheduled<Void>? {
        get { offline?.value.willTask }
        set { offline.update { $0.willTask = newValue } }
    }
    var expiryTask: Scheduled<Void>? {
        get { offline?.value.expiryTask }
        set { offline.update { $0.expiryTask = newValue } }
    }
    var disconnectedAt: NIODeadline? {
        get { offline?.value.disconnectedAt }
        set { offline.update { $0.disconnectedAt = newValue } }
    }

    init(clientId: String, loopIndex: Int, version: ProtocolVersion, expiry: UInt32, limits m: MQTTConfig,
         store: DurableStore?) {
        self.clientId = clientId
        self.shared = ManagedAtomic(loopIndex << SessionLoopIndex.shift)
        self.protocolVersion = version
        self.expiryInterval = expiry
        self.store = store
        self.outbound = OutboundState(window: m.maxInflight, maxQueue: m.maxQueuedMessages, queueQoS0: m.queueQoS0)
        adoptQueueLimits(m)
    }

    /// The queue limits of `m` (a session resumed after `reload config` changed them). A
    /// queue already longer than a lowered cap is not trimmed: it shrinks as it drains.
    func adoptQueueLimits(_ m: MQTTConfig) {
        outbound.maxQueue = m.maxQueuedMessages
        outbound.maxQueueBytes = m.maxQueuedBytes
        outbound.queueQoS0 = m.queueQoS0
    }

    /// Records a change of this session in the durable store when it is persistent.
    func record(_ op: @autoclosure () -> StoreOp) {
        guard persistent.load(ordering: .relaxed), let store else { return }
        store.submit(op())
    }

    /// A stored delivery left the session (acknowledged, expired, dropped).
    func forget(_ d: Delivery) {
        if d.stored { record(.done(clientId: clientId, messageId: d.message.storeId)) }
    }

    func sent(_ d: Delivery, packetId: UInt16?) {
        if d.stored, let id = packetId { record(.sent(clientId: clientId, messageId: d.message.storeId, packetId: id)) }
    }

    var isConnected: Bool { connection != nil }

    /// Delivers on the home loop: send now, queue, or drop (counted).
    func deliver(_ d: Delivery, ctx: LoopContext) {
        let now = ctx.eventLoop.now
        if d.message.isExpired(now: now) {
            ctx.stats.messagesDropped += 1
            forget(d)
            return
        }
        if terminated { return }
        let conn = connection
        switch outbound.enqueue(d, online: conn != nil, writable: conn?.isWritable ?? false, now: now) {
        case .send(let d, let id):
            sent(d, packetId: id)
            conn?.sendPublish(d, packetId: id, dup: false, now: now)
        case .queued:
            break
        case .dropped(let gone), .queuedEvicting(let gone):
            ctx.stats.messagesDropped += 1
            forget(gone)
        }
    }

    /// Fills the in-flight window from the queue (after an ack or when writable again).
    func drainQueue(ctx: LoopContext) {
        guard let conn = connection, !outbound.queue.isEmpty, conn.isWritable else { return }
        let now = ctx.eventLoop.now
        while let step = outbound.next(now: now) {
            switch step {
            case .send(let d, let id):
                sent(d, packetId: id)
                conn.sendPublish(d, packetId: id, dup: false, now: now)
            case .expired(let d):
                ctx.stats.messagesDropped += 1
                forget(d)
            }
        }
    }

    /// Resends unacknowledged messages (DUP) and PUBRELs on a resumed session.
    func redeliver(ctx: LoopContext) {
        guard let conn = connection else { return }
        let now = ctx.eventLoop.now
        for e in outbound.inflightInOrder() {
            switch e.phase {
            case .awaitingAck: conn.sendPublish(e.delivery, packetId: e.packetId, dup: true, now: now)
            case .awaitingComp: conn.sendPubRel(e.packetId)
            }
        }
        drainQueue(ctx: ctx)
    }

    func cancelTimers() {
        willTask?.cancel()
        willTask = nil
        expiryTask?.cancel()
        expiryTask = nil
    }
}

extension Session: SessionView {
    public func awaitingRelease(_ packetId: UInt16) -> Bool { awaitingRel.contains(packetId) }
    public var awaitingReleaseCount: Int { awaitingRel.count }
    public func fit(_ ack: OutboundState.Ack, _ packetId: UInt16) -> OutboundState.AckFit { outbound.fit(ack, packetId) }
}

/// The only ordering the session's atomic word is used with: each field is read and written
/// on its own, nothing else is published through it (swift-atomics takes orderings only as
/// literals, so the wrappers below cannot pass one through).
enum SessionAtomicOrdering { case relaxed }

/// A session's loop index, in the bits of its atomic word above the flags.
struct SessionLoopIndex {
    static let shift = 2
    let word: ManagedAtomic<Int>

    @inline(__always)
    func load(ordering: SessionAtomicOrdering) -> Int { word.load(ordering: .relaxed) >> Self.shift }

    func store(_ index: Int, ordering: SessionAtomicOrdering) {
        var old = word.load(ordering: .relaxed)
        while true {
            let new = (index << Self.shift) | (old & ((1 << Self.shift) - 1))
            let (done, seen) = word.weakCompareExchange(expected: old, desired: new, ordering: .relaxed)
            if done { return }
            old = seen
        }
    }
}

/// One flag bit of a session's atomic word.
struct SessionFlag {
    let word: ManagedAtomic<Int>
    let bit: Int

    @inline(__always)
    func load(ordering: SessionAtomicOrdering) -> Bool { word.load(ordering: .relaxed) & bit != 0 }

    func store(_ value: Bool, ordering: SessionAtomicOrdering) {
        if value {
            word.loadThenBitwiseOr(with: bit, ordering: .relaxed)
        } else {
            word.loadThenBitwiseAnd(with: ~bit, ordering: .relaxed)
        }
    }
}
