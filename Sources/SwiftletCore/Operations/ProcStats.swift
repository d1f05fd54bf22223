import CSwiftletSys
import Foundation

/// What Linux says about a process (or one of its threads) in /proc: memory, CPU time, open
/// descriptors. Every read is a few small files; nil where a file cannot be read (another OS,
/// a process that just ended).
public enum ProcStats {
    public struct Memory: Sendable {
        public var rssBytes: Int
        public var peakRSSBytes: Int
        public var vmBytes: Int
        public var peakVMBytes: Int
    }

    /// VmRSS, VmHWM, VmSize, VmPeak of /proc/PID/status.
    public static func memory(pid: Int32? = nil) -> Memory? {
        guard let text = read("/proc/\(pid.map { "\($0)" } ?? "self")/status") else { return nil }
        var kb: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].hasPrefix("Vm") else { continue }
            kb[String(parts[0])] = parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return Memory(rssBytes: (kb["VmRSS"] ?? 0) * 1024, peakRSSBytes: (kb["VmHWM"] ?? 0) * 1024,
                      vmBytes: (kb["VmSize"] ?? 0) * 1024, peakVMBytes: (kb["VmPeak"] ?? 0) * 1024)
    }

    /// User + system CPU seconds of a process, or of one of this process's threads.
    public static func cpuSeconds(pid: Int32? = nil, thread: Int32? = nil) -> Double? {
        let base = "/proc/\(pid.map { "\($0)" } ?? "self")"
        guard let text = read(thread.map { "\(base)/task/\($0)/stat" } ?? "\(base)/stat"),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(ticksPerSecond)
    }

    public static func openFiles(pid: Int32? = nil) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid.map { "\($0)" } ?? "self")/fd"))?.count
    }

    public static var threadId: Int32 { swiftlet_gettid() }

    static let ticksPerSecond: Int = max(1, sysconf(Int32(_SC_CLK_TCK)))

    private static func read(_ path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: d, as: UTF8.self)
    }
}

/// glibc's heap (mallinfo2) and malloc_trim.
public enum Heap {
    public struct Info: Sendable {
        public var arenaBytes: Int
        public var mmappedBytes: Int
        public var inUseBytes: Int
        public var freeBytes: Int
        public var releasableBytes: Int
    }

    public static func info() -> Info? {
        var h = swiftlet_heap_info()
        guard swiftlet_heap(&h) == 0 else { return nil }
        return Info(arenaBytes: Int(h.arena), mmappedBytes: Int(h.mmapped), inUseBytes: Int(h.in_use),
                    freeBytes: Int(h.free), releasableBytes: Int(h.releasable))
    }

    /// malloc_trim(0): free memory at the top and inside the arenas goes back to the system.
    @discardableResult
    public static func trim() -> Bool { swiftlet_heap_trim() == 1 }

    /// glibc's per-thread malloc cache off for this process: re-executes the program with
    /// `glibc.malloc.tcache_count=0` in GLIBC_TUNABLES unless the operator chose otherwise
    /// (docs/decisions/0010-malloc-thread-cache.md). Call first thing in main, before any
    /// thread starts; returns when no re-execution happened, with why when one was tried and
    /// failed (for the log, once there is one).
    public static func turnThreadCacheOff() -> String? {
        guard swiftlet_malloc_thread_cache_off(CommandLine.unsafeArgv) != 0 else { return nil }
        return "could not re-execute with glibc's malloc thread cache off (\(String(cString: strerror(errno)))); "
            + "running with it on"
    }

    /// GLIBC_TUNABLES, as this process sees it, turns glibc's per-thread malloc cache off.
    public static var threadCacheOff: Bool { swiftlet_malloc_thread_cache_is_off() == 1 }

    /// The environment for a child process: GLIBC_TUNABLES as it was before
    /// `turnThreadCacheOff` changed it, so sidecars run with glibc's defaults.
    static func restoreThreadCacheSetting(_ env: inout [String: String]) {
        guard let before = env.removeValue(forKey: "SWIFTLET_GLIBC_TUNABLES_BEFORE"), env["GLIBC_TUNABLES"] != nil else { return }
        if before.isEmpty { env.removeValue(forKey: "GLIBC_TUNABLES") } else { env["GLIBC_TUNABLES"] = before }
    }

    /// The bytes malloc gave for an object (its instance, not what it points to).
    static func size(of object: AnyObject) -> Int {
        Int(swiftlet_usable_size(UnsafeRawPointer(Unmanaged.passUnretained(object).toOpaque())))
    }
}
