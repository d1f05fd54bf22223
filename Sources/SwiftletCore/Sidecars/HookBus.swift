import SidecarLinkKit
import Atomics
import DequeModule
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SwiftletIPC

/// The nine hook points of emqttd 2.0 (seed: emqttd_plugin_template).
extension Hook {
    var bit: UInt16 { 1 << UInt16(rawValue) }
}

/// A sidecar's bounded queue of hook events: producers on any loop append under a short
/// lock; the sidecar's loop drains it in batches. When full, new events are dropped and counted.
final class HookQueue: @unchecked Sendable {
    private let lock = NIOLock()
    private var events = Deque<IPCHookEvent>()
    private var drainScheduled = false
    let capacity: Int
    private(set) var dropped = 0
    private(set) var delivered = 0

    init(capacity: Int) { self.capacity = capacity }

    /// Appends; true when the caller must schedule a drain.
    func push(_ e: IPCHookEvent) -> Bool {
        lock.withLock {
            guard events.count < capacity else {
                dropped += 1
                return false
            }
            events.append(e)
            if drainScheduled { return false }
            drainScheduled = true
            return true
        }
    }

    /// Takes events whose encoded size fits `budget` bytes (at least one).
    func take(budget: Int, maxCount: Int = 512) -> [IPCHookEvent] {
        lock.withLock {
            var out: [IPCHookEvent] = []
            var size = 2
            while let e = events.first, out.count < maxCount {
                let n = Self.size(e)
                if !out.isEmpty && size + n > budget { break }
                if out.isEmpty && size + n > budget {
                    // An event larger than a frame can never be sent.
                    events.removeFirst()
                    dropped += 1
                    continue
                }
                out.append(events.removeFirst())
                size += n
            }
            delivered += out.count
            if events.isEmpty { drainScheduled = false }
            return out
        }
    }

    /// Re-arms scheduling when a drain stopped early (not writable).
    func pause() { lock.withLock { drainScheduled = false } }

    var count: Int { lock.withLock { events.count } }

    static func size(_ e: IPCHookEvent) -> Int {
        var n = 2 + e.hook.utf8.count + 8 + 2
        for f in e.fields { n += 2 + f.key.utf8.count + 4 + f.value.readableBytes }
        return n
    }
}

/// Delivers hook events to the sidecars that registered them, asynchronously and batched, so
/// that a slow sidecar never slows delivery. With no subscriber for a hook, `emit` costs one
/// relaxed atomic load.
public final class HookBus: @unchecked Sendable {
    private let active = ManagedAtomic<UInt16>(0)
    private let subscribers = NIOLockedValueBox<[[SidecarConnection]]>(Array(repeating: [], count: Hook.allCases.count))
    /// The sidecar answering synchronous message.publish, if any (first registered wins).
    let publishFilter = NIOLockedValueBox<(SidecarConnection, TimeAmount)?>(nil)
    private let syncActive = ManagedAtomic<Bool>(false)

    @inline(__always)
    public func wants(_ hook: Hook) -> Bool { active.load(ordering: .relaxed) & hook.bit != 0 }

    var hasPublishFilter: Bool { syncActive.load(ordering: .relaxed) }

    func add(_ c: SidecarConnection) {
        for case .hook(let name, let sync, let budget) in c.capabilities {
            guard c.acceptedHooks.contains(name), let h = Hook(name: name) else { continue }
            if sync && h == .messagePublish {
                let b = TimeAmount.milliseconds(Int64(min(max(budget, 1), 1000)))
                publishFilter.withLockedValue { if $0 == nil { $0 = (c, b) } }
                syncActive.store(true, ordering: .relaxed)
                continue
            }
            subscribers.withLockedValue { if !$0[h.rawValue].contains(where: { $0 === c }) { $0[h.rawValue].append(c) } }
        }
        recompute()
    }

    func remove(_ c: SidecarConnection) {
        subscribers.withLockedValue { lists in
            for i in lists.indices { lists[i].removeAll { $0 === c } }
        }
        publishFilter.withLockedValue { if $0?.0 === c { $0 = nil } }
        syncActive.store(publishFilter.withLockedValue { $0 != nil }, ordering: .relaxed)
        recompute()
    }

    private func recompute() {
        let mask = subscribers.withLockedValue { lists in
            lists.enumerated().reduce(UInt16(0)) { $1.element.isEmpty ? $0 : $0 | (1 << UInt16($1.offset)) }
        }
        active.store(mask, ordering: .relaxed)
    }

    /// Queues one event for every subscriber of `hook`. `fields` is only evaluated when
    /// someone listens.
    public func emit(_ hook: Hook, _ fields: () -> [IPCField]) {
        guard wants(hook) else { return }
        let targets = subscribers.withLockedValue { $0[hook.rawValue] }
        guard !targets.isEmpty else { return }
        let event = IPCHookEvent(hook: hook.name, timestampMs: UInt64(Date().timeIntervalSince1970 * 1000), fields: fields())
        for c in targets where c.hookQueue.push(event) {
            c.eventLoop.execute { [self] in drain(c) }
        }
    }

    /// Sends queued events in frames of at most the negotiated size; stops while the
    /// sidecar's socket is not writable (events then queue up to the bound, then drop).
    func drain(_ c: SidecarConnection) {
        c.eventLoop.preconditionInEventLoop()
        var rounds = 0
        while rounds < 16 {
            guard c.isWritable else { return c.hookQueue.pause() }
            let batch = c.hookQueue.take(budget: Int(c.maxFrame) - 16)
            if batch.isEmpty { return }
            if !c.notifyOnLoop(.hookEvents(batch)) { return c.hookQueue.pause() }
            rounds += 1
        }
        c.eventLoop.execute { [self] in drain(c) }
    }
}
