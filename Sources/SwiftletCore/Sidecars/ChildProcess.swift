import CSwiftletSys
import SidecarLinkKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix

/// A sidecar process: posix_spawn with stdout and stderr on one pipe, the pipe read on an event
/// loop (NIOPipeBootstrap) and every line logged with `sidecar.name`, and reaping by
/// waitpid(WNOHANG). No thread per process (docs/decisions/0004-sidecar-processes.md).
enum ChildProcess {
    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `path` with `args` and exactly `environment`; stdin is /dev/null, signal
    /// dispositions and mask are reset, and no descriptor of the broker but the pipe is inherited.
    /// Returns the pid and the pipe's read end (the caller owns it).
    static func spawn(path: String, args: [String], environment: [String: String]) throws -> (pid: Int32, output: CInt) {
        var fds: [CInt] = [-1, -1]
        guard pipe2(&fds, O_CLOEXEC) == 0 else { throw SpawnError(description: "pipe: \(errnoText(errno))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        addCloseFrom(&actions, 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([path] + args).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        close(writeEnd)
        guard rc == 0 else {
            close(readEnd)
            throw SpawnError(description: errnoText(rc))
        }
        return (pid, readEnd)
    }

    /// As `spawn`, then limits and ids applied in the child before exec (fork + exec in C:
    /// posix_spawn can set neither). A step that fails in the child is this call's error.
    static func spawnIsolated(path: String, args: [String], environment: [String: String],
                              isolation: SidecarIsolation, ids: SidecarIsolation.Resolved) throws -> (pid: Int32, output: CInt) {
        var fds: [CInt] = [-1, -1]
        guard pipe2(&fds, O_CLOEXEC) == 0 else { throw SpawnError(description: "pipe: \(errnoText(errno))") }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        var iso = swiftlet_isolation()
        iso.set_ids = ids.uid != nil || ids.gid != nil ? 1 : 0
        iso.uid = ids.uid ?? geteuid()
        iso.gid = ids.gid ?? getegid()
        iso.memory_max = isolation.memoryMax.map { Int64($0) } ?? -1
        iso.open_files = isolation.openFiles.map { Int64($0) } ?? -1
        iso.cpu_seconds = isolation.cpuSeconds.map { Int64($0) } ?? -1
        let argv = ([path] + args).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var err = [CChar](repeating: 0, count: 512)
        let pid = swiftlet_spawn_isolated(path, argv, envp, writeEnd, &iso, &err, err.count)
        close(writeEnd)
        guard pid > 0 else {
            close(readEnd)
            throw SpawnError(description: String(cString: err))
        }
        return (pid, readEnd)
    }

    /// How `pid` ended, when it has (and is now reaped); nil while it runs.
    static func reap(_ pid: Int32) -> ProcessExit? {
        var status: CInt = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return nil }
        if r < 0 { return errno == EINTR ? nil : .exited(-1) }  // ECHILD: reaped elsewhere
        let sig = status & 0x7F
        return sig == 0 ? .exited((status >> 8) & 0xFF) : .signalled(sig)
    }

    /// Reads the pipe on `loop`, logging each line; `onEnd` runs on the loop at EOF.
    static func forwardOutput(_ fd: CInt, on loop: EventLoop, name: String, logger: Logger,
                              onEnd: @escaping @Sendable () -> Void) {
        NIOPipeBootstrap(group: loop)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(OutputLines(name: name, logger: logger, onEnd: onEnd))
                }
            }
            .takingOwnershipOfDescriptor(input: fd)
            .whenFailure { error in
                close(fd)
                logger.warning("sidecar output not readable", metadata: ["sidecar.name": "\(name)", "error": "\(error)"])
                onEnd()
            }
    }

    static func errnoText(_ code: CInt) -> String { String(cString: strerror(code)) }
}

// glibc (2.34+) has both, declared only under _GNU_SOURCE, which Swift's Glibc module does not
// define; both take and return plain C integers and pointers.
#if os(Linux)
@_silgen_name("pipe2")
private func pipe2(_ fds: UnsafeMutablePointer<CInt>, _ flags: CInt) -> CInt

@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: CInt) -> CInt
#else
private func pipe2(_ fds: UnsafeMutablePointer<CInt>, _ flags: CInt) -> CInt {
    guard pipe(fds) == 0 else { return -1 }
    for i in 0..<2 { _ = fcntl(fds[i], F_SETFD, FD_CLOEXEC) }
    return 0
}

private func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: CInt) -> CInt { 0 }
#endif

/// Splits a sidecar's output into lines for the broker log (a line over 64 KiB is cut).
private final class OutputLines: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let name: String
    let logger: Logger
    let onEnd: @Sendable () -> Void
    private var pending = ByteBuffer()

    init(name: String, logger: Logger, onEnd: @escaping @Sendable () -> Void) {
        self.name = name
        self.logger = logger
        self.onEnd = onEnd
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        pending.writeBuffer(&bytes)
        while let nl = pending.readableBytesView.firstIndex(of: 0x0A) {
            let line = pending.readString(length: nl - pending.readerIndex)!
            pending.moveReaderIndex(forwardBy: 1)
            log(line)
        }
        if pending.readableBytes > 65_536 {
            log(pending.readString(length: pending.readableBytes)!)
        }
        pending.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if pending.readableBytes > 0 { log(pending.readString(length: pending.readableBytes)!) }
        onEnd()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func log(_ line: String) {
        logger.info("\(line)", metadata: ["sidecar.name": "\(name)"])
    }
}
