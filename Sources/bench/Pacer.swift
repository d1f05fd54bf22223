import NIOCore

/// Ticks the fixed-rate publishers of one event loop from one repeated task, on a wheel of
/// 1 ms slots. Confined to its loop.
///
/// A `RepeatedTask` per publisher put ~9,500 tasks into NIO's scheduled-task heap per loop
/// at 19,000 connections x 1 msg/s: popping and rescheduling them (heap sifts of fat task
/// values) was ~15 % of the generator's CPU in perf, and with broker and generator sharing
/// the two cores the generator's lag became that curve's latency. Here a tick visits only the
/// publishers due in the slots since the last tick.
final class Pacer {
    static let slotNanos: UInt64 = 1_000_000
    /// More than one second of slots: every publisher's interval (1 ms to 1 s) fits in one lap.
    static let slots: UInt64 = 1024

    private struct Entry {
        weak var client: MQTTClient?
        var due: UInt64
        let interval: UInt64
    }

    let eventLoop: EventLoop
    private var wheel: [[Entry]] = Array(repeating: [], count: Int(Pacer.slots))
    private var count = 0
    /// The absolute slot (monotonic nanoseconds / `slotNanos`) processed last.
    private var lastSlot: UInt64 = 0
    private var task: RepeatedTask?

    init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

    /// Ticks `client` first at `first` (monotonic nanoseconds), then every `interval` ns, while
    /// its `pacedTick()` returns true.
    func add(_ client: MQTTClient, first: UInt64, interval: UInt64) {
        eventLoop.assertInEventLoop()
        if task == nil {
            lastSlot = monotonicNanos() / Self.slotNanos
            task = eventLoop.scheduleRepeatedTask(initialDelay: .nanoseconds(Int64(Self.slotNanos)),
                                                  delay: .nanoseconds(Int64(Self.slotNanos))) { [weak self] _ in
                self?.tick()
            }
        }
        insert(Entry(client: client, due: max(first, (lastSlot + 1) * Self.slotNanos), interval: max(interval, Self.slotNanos)))
    }

    private func insert(_ e: Entry) {
        wheel[Int((e.due / Self.slotNanos) % Self.slots)].append(e)
        count += 1
    }

    private func tick() {
        let now = monotonicNanos()
        let current = now / Self.slotNanos
        while lastSlot < current {
            lastSlot += 1
            let i = Int(lastSlot % Self.slots)
            let bucket = wheel[i]
            guard !bucket.isEmpty else { continue }
            wheel[i] = []
            count -= bucket.count
            for var e in bucket {
                if e.due / Self.slotNanos > lastSlot { insert(e); continue }  // a later lap
                guard let c = e.client, c.pacedTick() else { continue }
                // Keep the cadence; a tick that came late does not make the next one early.
                e.due = max(e.due + e.interval, (lastSlot + 1) * Self.slotNanos)
                insert(e)
            }
        }
        if count == 0 {
            task?.cancel()
            task = nil
        }
    }
}
