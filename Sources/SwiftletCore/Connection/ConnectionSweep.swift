import NIOCore

/// The timers of every MQTT connection on one event loop: one repeated task a second walks
/// the loop's connections and checks the CONNECT idle timeout, keep alive and the 3.1.1 retry
/// of unacknowledged messages (mosquitto checks keep alive the same way, in its main loop).
///
/// Per-connection `Scheduled` tasks cost about 1 KB of heap for every idle connection (the
/// scheduled task, its promise and future, the loop's heap slot, the repeated retry task);
/// here a connection costs one array slot. Deadlines are checked to the second, so a keep
/// alive expires up to one second after 1.5 times the keep alive.
/// Used only on its event loop.
final class ConnectionSweep {
    static let period = TimeAmount.seconds(1)

    let eventLoop: EventLoop
    private var members: [MQTTConnectionHandler] = []
    private var task: RepeatedTask?

    init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

    var count: Int { members.count }

    func add(_ h: MQTTConnectionHandler) {
        guard h.sweepSlot < 0 else { return }
        h.sweepSlot = members.count
        members.append(h)
        if task == nil {
            task = eventLoop.scheduleRepeatedTask(initialDelay: Self.period, delay: Self.period) { [weak self] _ in
                self?.tick()
            }
        }
    }

    func remove(_ h: MQTTConnectionHandler) {
        let i = h.sweepSlot
        guard i >= 0, i < members.count, members[i] === h else { return }
        h.sweepSlot = -1
        let last = members.removeLast()
        if i < members.count {
            members[i] = last
            last.sweepSlot = i
        }
        if members.isEmpty {
            // An idle broker wakes up for nothing.
            task?.cancel()
            task = nil
        }
    }

    private func tick() {
        let now = eventLoop.now
        var i = 0
        while i < members.count {
            let h = members[i]
            h.sweep(now: now)
            // A connection that closed was swapped out of slot i: look at slot i again.
            if i < members.count, members[i] === h { i += 1 }
        }
    }
}
