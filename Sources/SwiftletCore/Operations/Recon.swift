import SwiftletRouting
import Foundation
import NIOCore

/// emqttd_recon mapped to this runtime (`swiftlet-ctl recon`): the process's memory, glibc's
/// heap, estimates by component, samples of the event loops, sidecars from /proc. Everything
/// is read when asked (on each loop for its own state); nothing is counted per packet.
extension Broker {
    /// Memory held by each part of the broker, in bytes. Sizes of objects are malloc's
    /// (malloc_usable_size); buffers count their capacity; shared message payloads count
    /// once per session that holds them.
    struct ComponentMemory {
        var sessions = 0
        var queues = 0
        var retained = 0
        var receiveBuffers = 0
        var authCache = 0
        var sidecarLinks = 0
        var sessionCount = 0
        var queuedMessages = 0
        var connections = 0

        static func + (a: Self, b: Self) -> Self {
            var r = a
            r.sessions += b.sessions
            r.queues += b.queues
            r.receiveBuffers += b.receiveBuffers
            r.sessionCount += b.sessionCount
            r.queuedMessages += b.queuedMessages
            r.connections += b.connections
            return r
        }
    }

    /// An auth cache entry: the key strings, the answer and the map/LRU bookkeeping.
    static let authCacheEntryEstimate = 192
    /// A hook event waiting for a sidecar.
    static let hookEventEstimate = 256

    func componentMemory() -> EventLoopFuture<ComponentMemory> {
        let sessions = onSessionLoops(registry.all()) { s, _ -> ComponentMemory in
            var m = ComponentMemory()
            m.sessionCount = 1
            m.sessions = Heap.size(of: s) + s.clientId.utf8.count
                + s.subscriptions.keys.reduce(0) { $0 + $1.utf8.count + 64 }
            let queued = s.outbound.queue.reduce(0) { $0 + $1.message.payload.readableBytes + $1.message.topic.utf8.count + 48 }
            let inflight = s.outbound.inflight.values.reduce(0) {
                $0 + $1.delivery.message.payload.readableBytes + $1.delivery.message.topic.utf8.count + 64
            }
            m.queues = queued + inflight
            m.queuedMessages = s.outbound.queue.count + s.outbound.inflight.count
            return m
        }
        let buffers = onConnectionLoops { list -> ComponentMemory in
            var m = ComponentMemory()
            for c in list {
                m.connections += 1
                m.receiveBuffers += Heap.size(of: c)
                if let ctx = c.transport as? ChannelHandlerContext,
                   let a = try? ctx.channel.syncOptions?.getOption(ChannelOptions.recvAllocator) {
                    m.receiveBuffers += a.nextBufferSize() ?? 0
                }
            }
            return m
        }
        let el = group.next()
        return sessions.and(EventLoopFuture.whenAllSucceed(buffers, on: el)).map { [self] s, b in
            var m = (s + b).reduce(ComponentMemory(), +)
            m.retained = retained.bytes + retained.count * 96
            m.authCache = (auth.authnCache.count + auth.authzCache.count) * Self.authCacheEntryEstimate
            m.sidecarLinks = sidecars.connected.reduce(0) { $0 + $1.hookQueue * Self.hookEventEstimate + 65_536 }
            return m
        }
    }

    /// `recon bin_leak`: every connection's receive buffer back to its starting size, then
    /// malloc_trim. Returns what the process held before and after.
    func releaseIdleMemory() -> EventLoopFuture<(before: ProcStats.Memory?, heapBefore: Heap.Info?, trimmed: Int,
                                                   after: ProcStats.Memory?, heapAfter: Heap.Info?)> {
        let before = ProcStats.memory()
        let heapBefore = Heap.info()
        let trims = onConnectionLoops { list -> Int in
            var n = 0
            for c in list {
                guard let ctx = c.transport as? ChannelHandlerContext, let opts = ctx.channel.syncOptions,
                      let a = try? opts.getOption(ChannelOptions.recvAllocator),
                      (a.nextBufferSize() ?? 0) > Int(CompactRecvAllocator.initial) else { continue }
                if (try? opts.setOption(ChannelOptions.recvAllocator, value: CompactRecvAllocator())) != nil { n += 1 }
            }
            return n
        }
        return EventLoopFuture.whenAllSucceed(trims, on: group.next()).flatMap { [self] counts in
            threadPool.runIfActive(eventLoop: group.next()) {
                Heap.trim()
                return (before, heapBefore, counts.reduce(0, +), ProcStats.memory(), Heap.info())
            }
        }
    }

    /// One sample of every event loop: how long a task waited for it, the work queued on it
    /// (deliveries from other loops, connections to flush), its thread's CPU time.
    struct LoopSample {
        var index: Int
        var waitNanos: Int64
        var pendingWork: Int
        var thread: Int32
        var cpuSeconds: Double
    }

    func sampleLoops() -> EventLoopFuture<[LoopSample]> {
        let futures = loops.map { ctx -> EventLoopFuture<LoopSample> in
            let asked = NIODeadline.now()
            return ctx.eventLoop.submit {
                let tid = ProcStats.threadId
                return LoopSample(index: ctx.index, waitNanos: (NIODeadline.now() - asked).nanoseconds,
                                  pendingWork: ctx.pendingWork, thread: tid, cpuSeconds: ProcStats.cpuSeconds(thread: tid) ?? 0)
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: group.next())
    }
}
