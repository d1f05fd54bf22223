import Atomics
import NIOCore
import NIOSSL
import NIOPosix

/// What one event loop counted. Plain integers: only the owning loop writes them; reads go
/// through `BenchContext.snapshot()`, which runs on each loop.
struct Counters: Sendable {
    var sent = 0
    var acked = 0
    var received = 0
    var duplicates = 0
    var connected = 0
    var connectErrors = 0
    var disconnects = 0
    var protocolErrors = 0
    var stalls = 0
    var gaps = 0
    var outOfOrder = 0
    var latency = Histogram()

    mutating func add(_ o: Counters) {
        sent += o.sent
        acked += o.acked
        received += o.received
        duplicates += o.duplicates
        connected += o.connected
        connectErrors += o.connectErrors
        disconnects += o.disconnects
        protocolErrors += o.protocolErrors
        stalls += o.stalls
        gaps += o.gaps
        outOfOrder += o.outOfOrder
        latency.merge(o.latency)
    }
}

/// The counters of one loop, confined to it.
final class LoopCounters: @unchecked Sendable {
    let eventLoop: EventLoop
    var c = Counters()
    /// The loop's fixed-rate publishers' timer.
    let pacer: Pacer
    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        pacer = Pacer(eventLoop: eventLoop)
    }
}

/// End-to-end flow control of one publisher: how many of its messages were sent and how
/// many deliveries of them subscribers in this process received. Subscribers on any loop
/// update `received`; when the publisher is blocked on its window and enough deliveries
/// came back, the subscriber wakes it on its own loop.
final class PublisherFlow: @unchecked Sendable {
    let index: Int
    let eventLoop: EventLoop
    /// Deliveries expected per message (subscribers per topic).
    let fanout: Int
    /// Deliveries allowed in flight end to end (sent x fanout - received).
    let window: Int
    let sent = ManagedAtomic<Int>(0)
    let received = ManagedAtomic<Int>(0)
    let blocked = ManagedAtomic<Bool>(false)
    /// Deliveries written off after a stall (QoS 0 messages the broker dropped).
    let forgiven = ManagedAtomic<Int>(0)
    /// Set once the publisher's connection exists; touched on `eventLoop` only.
    var wake: (() -> Void)?

    init(index: Int, eventLoop: EventLoop, fanout: Int, window: Int) {
        self.index = index
        self.eventLoop = eventLoop
        self.fanout = max(1, fanout)
        self.window = max(1, window)
    }

    /// Deliveries outstanding, given `forgiven` deliveries written off after a stall.
    func outstanding(forgiven: Int) -> Int {
        sent.load(ordering: .sequentiallyConsistent) * fanout - received.load(ordering: .sequentiallyConsistent) - forgiven
    }

    /// Called by a subscriber for every delivery of this publisher's messages.
    @inline(__always)
    func delivered() {
        let r = received.wrappingIncrementThenLoad(ordering: .sequentiallyConsistent)
        guard blocked.load(ordering: .sequentiallyConsistent) else { return }
        // Wake at half a window of credit, so the publisher sends a batch, not one message.
        let out = sent.load(ordering: .relaxed) * fanout - r - forgiven.load(ordering: .relaxed)
        if out > window / 2 { return }
        if blocked.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
            eventLoop.execute { self.wake?() }
        }
    }
}

/// Everything a run shares: the event loops, their counters and the publishers' flows.
final class BenchContext: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let loops: [EventLoop]
    let counters: [LoopCounters]
    private let byLoop: [ObjectIdentifier: LoopCounters]
    /// Latency is recorded only while set (after the warm-up).
    let measuring = ManagedAtomic<Bool>(false)
    /// Publishing stops when cleared.
    let publishing = ManagedAtomic<Bool>(true)
    /// Publisher flows by publisher index; empty when this process runs no publisher.
    var flows: [PublisherFlow] = []
    /// `--tls`: one client context for every connection.
    var tls: NIOSSLContext?

    init(threads: Int) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        loops = Array(group.makeIterator())
        counters = loops.map { LoopCounters(eventLoop: $0) }
        var m: [ObjectIdentifier: LoopCounters] = [:]
        for c in counters { m[ObjectIdentifier(c.eventLoop)] = c }
        byLoop = m
    }

    func counters(for el: EventLoop) -> LoopCounters { byLoop[ObjectIdentifier(el)]! }

    private var nextLoop = 0
    /// Loops handed out round robin, so connections spread evenly.
    func nextEventLoop() -> EventLoop {
        defer { nextLoop = (nextLoop + 1) % loops.count }
        return loops[nextLoop]
    }

    /// Sum of every loop's counters, read on each loop.
    func snapshot() async throws -> Counters {
        var total = Counters()
        for lc in counters {
            let c = try await lc.eventLoop.submit { lc.c }.get()
            total.add(c)
        }
        return total
    }

    func shutdown() async {
        try? await group.shutdownGracefully()
    }
}
