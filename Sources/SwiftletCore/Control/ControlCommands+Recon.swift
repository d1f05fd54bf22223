import Foundation
import NIOCore

/// `swiftlet-ctl recon memory | allocated | node_stats [N] [INTERVAL] | bin_leak | sidecars`
/// (emqttd_recon's verbs, docs/operations.md). Byte figures are integers in keys ending `_bytes`.
extension Broker {
    static let reconUsage = "recon memory\nrecon allocated\nrecon node_stats [<samples> [<interval seconds>]]\nrecon bin_leak\nrecon sidecars"

    func registerReconCommands() {
        builtin("recon", usage: Self.reconUsage) { b, args, loop in
            switch args.first {
            case "memory" where args.count == 1:
                return b.componentMemory().hop(to: loop).map { b.memoryReply($0) }
            case "allocated" where args.count == 1:
                return loop.reply(b.allocatedReply())
            case "node_stats" where args.count <= 3:
                let n = args.count > 1 ? Int(args[1]) : 5
                let interval = args.count > 2 ? Double(args[2]) : 1
                guard let n, let interval, (1...60).contains(n), interval >= 0.1, interval <= 10,
                      Double(n - 1) * interval <= 50 else {
                    return loop.reply(.failure("node_stats: 1 to 60 samples, an interval of 0.1 to 10 s, 50 s in all"))
                }
                return b.nodeStats(samples: n, interval: interval).hop(to: loop)
            case "bin_leak" where args.count == 1:
                return b.releaseIdleMemory().hop(to: loop).map { r in
                    let rssFreed = max(0, (r.before?.rssBytes ?? 0) - (r.after?.rssBytes ?? 0))
                    let json: [String: Any] = [
                        "receive_buffers_trimmed": r.trimmed,
                        "rss_before_bytes": r.before?.rssBytes ?? 0, "rss_after_bytes": r.after?.rssBytes ?? 0,
                        "rss_released_bytes": rssFreed,
                        "heap_free_before_bytes": r.heapBefore?.freeBytes ?? 0, "heap_free_after_bytes": r.heapAfter?.freeBytes ?? 0,
                    ]
                    let text = TextTable.fields([
                        ("receive_buffers_trimmed", "\(r.trimmed)"),
                        ("rss_before", Self.bytes(r.before?.rssBytes)), ("rss_after", Self.bytes(r.after?.rssBytes)),
                        ("rss_released", Self.bytes(rssFreed)),
                        ("heap_free_before", Self.bytes(r.heapBefore?.freeBytes)), ("heap_free_after", Self.bytes(r.heapAfter?.freeBytes)),
                    ])
                    return .done(text, json)
                }
            case "sidecars" where args.count == 1:
                return b.supervisor.list().hop(to: loop).map { b.sidecarsReply($0) }
            default:
                return loop.reply(.usage(Self.reconUsage.replacingOccurrences(of: "\nrecon ", with: " | ")))
            }
        }
    }

    static func bytes(_ n: Int?) -> String {
        guard let n else { return "-" }
        if n >= 1 << 30 { return String(format: "%.1f GiB", Double(n) / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", Double(n) / 1024) }
        return "\(n) B"
    }

    private func memoryReply(_ c: ComponentMemory) -> ControlReply {
        let p = ProcStats.memory()
        let h = Heap.info()
        let threadCache = Heap.threadCacheOff ? "off" : "on"
        let components: [(String, Int)] = [("sessions", c.sessions), ("queues", c.queues), ("retained", c.retained),
                                           ("receive_buffers", c.receiveBuffers), ("auth_cache", c.authCache),
                                           ("sidecar_links", c.sidecarLinks)]
        var json: [String: Any] = [
            "rss_bytes": p?.rssBytes ?? 0, "heap_in_use_bytes": h?.inUseBytes ?? 0, "heap_free_bytes": h?.freeBytes ?? 0,
            "heap_arena_bytes": h?.arenaBytes ?? 0, "heap_mmapped_bytes": h?.mmappedBytes ?? 0,
            "heap_releasable_bytes": h?.releasableBytes ?? 0, "malloc_thread_cache": threadCache,
            "counts": ["sessions": c.sessionCount, "queued_messages": c.queuedMessages, "connections": c.connections,
                       "retained": retained.count, "auth_cache_entries": auth.authnCache.count + auth.authzCache.count,
                       "sidecars": sidecars.connected.count],
        ]
        var byComponent: [String: Int] = [:]
        for (k, v) in components { byComponent["\(k)_bytes"] = v }
        json["components"] = byComponent
        var text = TextTable.fields([("rss", Self.bytes(p?.rssBytes)), ("heap_in_use", Self.bytes(h?.inUseBytes)),
                                     ("heap_free", Self.bytes(h?.freeBytes)), ("heap_mmapped", Self.bytes(h?.mmappedBytes)),
                                     ("malloc_thread_cache", threadCache)])
        text += "\n" + TextTable.render(["COMPONENT", "BYTES", "SIZE"], components.map { [$0.0, "\($0.1)", Self.bytes($0.1)] })
        text += "\ncomponents are estimates: object sizes from malloc, buffer capacities, payloads once per holder"
        return .done(text, json)
    }

    private func allocatedReply() -> ControlReply {
        let p = ProcStats.memory()
        let h = Heap.info()
        let json: [String: Any] = [
            "current": ["rss_bytes": p?.rssBytes ?? 0, "heap_in_use_bytes": h?.inUseBytes ?? 0, "vm_bytes": p?.vmBytes ?? 0],
            "peak": ["rss_bytes": p?.peakRSSBytes ?? 0, "vm_bytes": p?.peakVMBytes ?? 0],
        ]
        let text = TextTable.render(["", "RSS", "HEAP IN USE", "VIRTUAL"], [
            ["current", Self.bytes(p?.rssBytes), Self.bytes(h?.inUseBytes), Self.bytes(p?.vmBytes)],
            ["peak", Self.bytes(p?.peakRSSBytes), "-", Self.bytes(p?.peakVMBytes)],
        ])
        return .done(text, json)
    }

    /// `samples` readings `interval` seconds apart; rates and CPU are over each interval.
    func nodeStats(samples: Int, interval: Double) -> EventLoopFuture<ControlReply> {
        let el = group.next()
        struct Reading { var at: NIODeadline; var stats: LoopStats; var cpu: Double; var loops: [LoopSample] }
        func read() -> EventLoopFuture<Reading> {
            let at = NIODeadline.now()
            return collectStats().and(sampleLoops()).map { s, l in
                Reading(at: at, stats: s, cpu: ProcStats.cpuSeconds() ?? 0, loops: l.sorted { $0.index < $1.index })
            }
        }
        var rows: [[String: Any]] = []
        func step(_ prev: Reading, left: Int) -> EventLoopFuture<Void> {
            guard left > 0 else { return el.makeSucceededFuture(()) }
            return el.scheduleTask(in: .nanoseconds(Int64(interval * 1e9))) {}.futureResult.flatMap {
                read().hop(to: el).flatMap { [self] now in
                    let wall = max(1e-6, Double((now.at - prev.at).nanoseconds) / 1e9)
                    var loopRows: [[String: Any]] = []
                    for (a, b) in zip(prev.loops, now.loops) {
                        loopRows.append(["loop": b.index, "queue_depth": b.pendingWork,
                                         "task_wait_ms": Double(b.waitNanos) / 1e6,
                                         "busy_fraction": min(1, max(0, (b.cpuSeconds - a.cpuSeconds) / wall))])
                    }
                    rows.append([
                        "connections": clientsConnected.load(ordering: .relaxed),
                        "messages_in": now.stats.messagesReceived - prev.stats.messagesReceived,
                        "messages_out": now.stats.messagesSent - prev.stats.messagesSent,
                        "messages_in_per_second": Double(now.stats.messagesReceived - prev.stats.messagesReceived) / wall,
                        "messages_out_per_second": Double(now.stats.messagesSent - prev.stats.messagesSent) / wall,
                        "cpu_percent": max(0, (now.cpu - prev.cpu) / wall * 100),
                        "rss_bytes": ProcStats.memory()?.rssBytes ?? 0,
                        "interval_seconds": wall, "loops": loopRows,
                    ])
                    return step(now, left: left - 1)
                }
            }
        }
        return read().hop(to: el).flatMap { first in step(first, left: samples) }.map {
            var text = TextTable.render(["#", "CONNS", "IN/S", "OUT/S", "CPU%", "LOOPS (queue depth, wait ms, busy)"],
                                        rows.enumerated().map { i, r in
                let loops = (r["loops"] as? [[String: Any]] ?? []).map {
                    String(format: "%d:%d/%.2f/%.0f%%", $0["loop"] as? Int ?? 0, $0["queue_depth"] as? Int ?? 0,
                           $0["task_wait_ms"] as? Double ?? 0, ($0["busy_fraction"] as? Double ?? 0) * 100)
                }.joined(separator: " ")
                return ["\(i + 1)", "\(r["connections"] ?? 0)",
                        String(format: "%.0f", r["messages_in_per_second"] as? Double ?? 0),
                        String(format: "%.0f", r["messages_out_per_second"] as? Double ?? 0),
                        String(format: "%.1f", r["cpu_percent"] as? Double ?? 0), loops]
            })
            text += "\n\(rows.count) sample(s), \(interval) s apart"
            return .done(text, ["samples": rows])
        }
    }

    private func sidecarsReply(_ managed: [Supervisor.Status]) -> ControlReply {
        var procs: [(name: String, kind: String, pid: Int32)] = managed.compactMap { s in s.pid.map { (s.name, "managed", $0) } }
        let names = Set(managed.map(\.name))
        for c in sidecars.connected where !names.contains(c.name) && c.pid > 0 { procs.append((c.name, "external", c.pid)) }
        var rows: [[String]] = []
        var json: [[String: Any]] = []
        for p in procs {
            let m = ProcStats.memory(pid: p.pid)
            let cpu = ProcStats.cpuSeconds(pid: p.pid)
            let fds = ProcStats.openFiles(pid: p.pid)
            rows.append([p.name, p.kind, "\(p.pid)", Self.bytes(m?.rssBytes), cpu.map { String(format: "%.2f", $0) } ?? "-",
                         fds.map { "\($0)" } ?? "-"])
            json.append(["name": p.name, "kind": p.kind, "pid": Int(p.pid), "rss_bytes": m?.rssBytes ?? 0,
                         "peak_rss_bytes": m?.peakRSSBytes ?? 0, "cpu_seconds": cpu ?? 0, "open_files": fds ?? 0])
        }
        return .done(TextTable.render(["NAME", "KIND", "PID", "RSS", "CPU SECONDS", "OPEN FILES"], rows), json)
    }
}
