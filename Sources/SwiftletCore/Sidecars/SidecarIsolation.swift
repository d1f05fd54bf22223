#if canImport(Glibc)
import Glibc
#endif
import SwiftletConfig
import Foundation
import TOMLKit

/// How the OS confines a managed sidecar (its plugin file's `[sidecar]` keys `user`, `group`,
/// `memory_max`, `open_files`, `cpu_seconds`, `clean_env`). Users and groups need the broker
/// to run as root; limits do not, but an unprivileged broker cannot raise one above its own
/// hard limit.
public struct SidecarIsolation: Sendable, Equatable {
    public var user: String?
    public var group: String?
    /// RLIMIT_AS, bytes: an allocation past it fails (the sidecar then usually dies and is restarted).
    public var memoryMax: Int?
    /// RLIMIT_NOFILE.
    public var openFiles: Int?
    /// RLIMIT_CPU, seconds of CPU time: SIGXCPU at the soft limit, SIGKILL a second later.
    public var cpuSeconds: Int?
    /// Only PATH, LANG, HOME, USER, the SWIFTLET_* variables and `[sidecar.env]`; nil: true
    /// when `user` is set (another user gets none of the broker's environment), else false.
    public var cleanEnv: Bool?

    public init() {}

    public var isEmpty: Bool { self == SidecarIsolation() }
    public var wantsCleanEnvironment: Bool { cleanEnv ?? (user != nil) }

    /// `memory_max = 268435456` or `"256M"`, `"1G"`, `"512KiB"`.
    static func parseBytes(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20),
                                      ("G", 1 << 30), ("B", 1)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let n = Int(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n >= 0 else { return nil }
            return n.multipliedReportingOverflow(by: factor).overflow ? nil : n * factor
        }
        return Int(t)
    }

    static func parse(_ t: TOMLTable, reader: ConfigLoader.Reader) throws -> SidecarIsolation {
        let s = "sidecar"
        var iso = SidecarIsolation()
        iso.user = try reader.string(t, "user", section: s)
        iso.group = try reader.string(t, "group", section: s)
        if let u = iso.user, u.isEmpty { throw reader.error("sidecar.user", "must not be empty") }
        if let g = iso.group, g.isEmpty { throw reader.error("sidecar.group", "must not be empty") }
        if let v = t["memory_max"] {
            let bytes: Int?
            if let i = v.int { bytes = i } else if let str = v.string { bytes = parseBytes(str) } else { bytes = nil }
            guard let bytes, bytes >= 16 << 20 else {
                throw reader.error("sidecar.memory_max", "must be a number of bytes (or \"256M\", \"1G\") of at least 16 MiB")
            }
            iso.memoryMax = bytes
        }
        iso.openFiles = try reader.int(t, "open_files", section: s, min: 16, max: 16_777_216)
        iso.cpuSeconds = try reader.int(t, "cpu_seconds", section: s, min: 1, max: 1 << 40)
        iso.cleanEnv = try reader.bool(t, "clean_env", section: s)
        return iso
    }

    /// The ids to switch to, checked against this system: a clear error for a user or group
    /// that does not exist, or ids asked for by a broker that is not root.
    public struct Resolved: Sendable, Equatable {
        public var uid: UInt32?
        public var gid: UInt32?
        public var home: String?
    }

    public func resolve() throws -> Resolved {
        var r = Resolved()
        guard user != nil || group != nil else { return r }
        guard geteuid() == 0 else {
            throw ConfigError(key: user != nil ? "sidecar.user" : "sidecar.group", line: nil,
                              message: "needs the broker to run as root (it runs as uid \(geteuid()))")
        }
        if let user {
            guard let pw = getpwnam(user) else {
                throw ConfigError(key: "sidecar.user", line: nil, message: "no such user \(user.debugDescription)")
            }
            r.uid = pw.pointee.pw_uid
            r.home = String(cString: pw.pointee.pw_dir)
            // Without `group`: the broker's group, so that a sidecar socket of mode 0660 lets it in.
            r.gid = getegid()
        }
        if let group {
            guard let gr = getgrnam(group) else {
                throw ConfigError(key: "sidecar.group", line: nil, message: "no such group \(group.debugDescription)")
            }
            r.gid = gr.pointee.gr_gid
        }
        if r.uid == nil { r.uid = geteuid() }
        return r
    }

    /// A limit above the broker's own hard limit can only be set by root: refused up front.
    public func checkLimits() throws {
        guard geteuid() != 0 else { return }
        let checks: [(Int?, Int32, String)] = [(memoryMax, Int32(RLIMIT_AS.rawValue), "memory_max"),
                                               (openFiles, Int32(RLIMIT_NOFILE.rawValue), "open_files"),
                                               (cpuSeconds.map { $0 + 1 }, Int32(RLIMIT_CPU.rawValue), "cpu_seconds")]
        for (value, resource, key) in checks {
            guard let value else { continue }
            var r = rlimit()
            guard getrlimit(__rlimit_resource_t(UInt32(resource)), &r) == 0 else { continue }
            if r.rlim_max != rlim_t.max, UInt64(value) > UInt64(r.rlim_max) {
                throw ConfigError(key: "sidecar.\(key)", line: nil,
                                  message: "\(value) is above the broker's hard limit \(r.rlim_max); only root may raise it")
            }
        }
    }
}
