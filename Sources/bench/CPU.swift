#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on the monotonic clock. Shared by every process on the host (Linux
/// CLOCK_MONOTONIC), so a publisher in one process and a subscriber in another can compare
/// the timestamp carried in the payload.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CPU time of this process (user + system), from getrusage(RUSAGE_SELF).
struct CPUSample: Sendable {
    var user: Double
    var system: Double
    var wall: UInt64

    static func now() -> CPUSample {
        var ru = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
        #else
        getrusage(RUSAGE_SELF, &ru)
        #endif
        func secs(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUSample(user: secs(ru.ru_utime), system: secs(ru.ru_stime), wall: monotonicNanos())
    }
}

/// CPU seconds and resident memory of another process (the broker), from /proc.
struct ProcessSample: Sendable {
    var cpuSeconds: Double
    var rssBytes: Int
    /// The user and system (kernel) parts of `cpuSeconds`.
    var userSeconds: Double = 0
    var systemSeconds: Double = 0

    static func read(pid: Int32) -> ProcessSample? {
        guard let stat = readFile("/proc/\(pid)/stat"), let status = readFile("/proc/\(pid)/status") else { return nil }
        // Fields after the command name, which is in parentheses and may contain spaces.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        guard fields.count > 13, let ut = Double(fields[11]), let st = Double(fields[12]) else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        var rss = 0
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let kb = Int(parts[1]) { rss = kb * 1024 }
        }
        return ProcessSample(cpuSeconds: (ut + st) / hz, rssBytes: rss, userSeconds: ut / hz, systemSeconds: st / hz)
    }
}

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Number of online CPUs.
func onlineCPUs() -> Int {
    Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

func getpidValue() -> Int32 { getpid() }

/// Raises the soft open-file limit to the hard limit (10,000 connections need 10,000 fds).
func raiseOpenFileLimit() {
    var rl = rlimit()
    #if os(Linux)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &rl) == 0, rl.rlim_cur < rl.rlim_max else { return }
    rl.rlim_cur = rl.rlim_max
    _ = setrlimit(resource, &rl)
}
