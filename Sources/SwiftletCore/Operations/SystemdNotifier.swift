#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// systemd's readiness protocol (sd_notify(3)) without libsystemd: datagrams on the Unix
/// socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
/// Added as the broker's last part, so `READY=1` means every listener is bound; `STOPPING=1`
/// when shutdown begins. With `$WATCHDOG_USEC` (from `WatchdogSec=`), `WATCHDOG=1` every
/// half period, sent only after every event loop has run a no-op task: a stuck loop stops
/// the petting and systemd restarts the broker. Without `$NOTIFY_SOCKET` it does nothing.
public final class SystemdNotifier: BrokerPart, @unchecked Sendable {
    public let name = "systemd notify"
    let group: EventLoopGroup
    let logger: Logger
    let socketPath: String?
    let watchdogInterval: TimeAmount?
    private let timer = NIOLockedValueBox<RepeatedTask?>(nil)

    public init(group: EventLoopGroup, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.group = group
        self.logger = logger
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 {
            watchdogInterval = .microseconds(max(usec / 2, 1000))
        } else {
            watchdogInterval = nil
        }
    }

    public func start() async throws {
        guard let socketPath else { return }
        if let error = Self.send("READY=1\nSTATUS=serving\nMAINPID=\(getpid())", to: socketPath) {
            logger.warning("systemd notification failed", metadata: ["systemd.socket": "\(socketPath)", "error": "\(error)"])
        } else {
            logger.info("readiness sent to systemd", metadata: ["systemd.socket": "\(socketPath)"])
        }
        guard let every = watchdogInterval else { return }
        let loops = Array(group.makeIterator())
        let task = group.next().scheduleRepeatedTask(initialDelay: every, delay: every) { [logger] _ in
            let first = loops.first!
            EventLoopFuture.andAllSucceed(loops.map { $0.submit {} }, on: first).whenSuccess {
                if let e = Self.send("WATCHDOG=1", to: socketPath) {
                    logger.warning("systemd watchdog notification failed", metadata: ["error": "\(e)"])
                }
            }
        }
        timer.withLockedValue { $0 = task }
    }

    public func stop() async {
        timer.withLockedValue { $0?.cancel(); $0 = nil }
        if let socketPath { _ = Self.send("STOPPING=1", to: socketPath) }
    }

    /// One datagram; nil when sent, else why not.
    static func send(_ message: String, to path: String) -> String? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return "socket path too long" }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        let payload = Array(message.utf8)
        let n = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
        return n == payload.count ? nil : String(cString: strerror(errno))
    }
}
