import CSwiftletSys
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Where the sockets of parked connections wait (docs/decisions/0009).
///
/// A plain-TCP connection idle for `mqtt.park_after` gives its SwiftNIO channel back (~2 KB:
/// the channel, its pipeline, write queue and receive buffer) and keeps only its MQTT state;
/// its socket moves here, into one epoll set that reports each socket once
/// (`EPOLLONESHOT`). One thread waits on the set and hands a socket that became readable to
/// its connection's event loop, which gives it a new channel (`MQTTConnectionHandler.unpark`).
/// A write to a parked connection unparks it on its loop without passing through here.
///
/// Memory: a parked connection frees its channel, but glibc's malloc keeps freed memory for
/// reuse and returns only whole free pages, and only when asked (`malloc_trim`). Connections
/// are accepted on a loop of their own (`Broker.acceptGroup`), so channels are allocated apart
/// from the connections' long-lived state and free whole pages when they go. After a burst of
/// at least `trimBatch` parked connections the lot's thread trims once parking has paused for
/// `trimQuiet` (or `trimMaxDelay` after the burst began), at most once per `trimInterval`: a
/// trim walks every arena under its lock, so a trickle of parking is left to reuse.
///
/// Thread safety: `add` and `remove` run on connections' loops, `run` on the lot's thread;
/// the table of waiting sockets is behind `lock`.
final class ParkingLot: @unchecked Sendable {
    private let lock = NIOLock()
    private var waiting: [UInt64: ParkedSocket] = [:]
    private var nextToken: UInt64 = 1
    private var ep: CInt = -1
    private var wakeFD: CInt = -1
    private var stopped = false
    private let logger: Logger
    /// Parked since the last trim: how many, the first and the last.
    private var parkedSinceTrim = 0
    private var firstParkedAt: NIODeadline?
    private var lastParkedAt = NIODeadline.uptimeNanoseconds(0)
    private var lastTrim = NIODeadline.uptimeNanoseconds(0)
    static let trimBatch = 256
    static let trimQuiet = TimeAmount.seconds(2)
    static let trimMaxDelay = TimeAmount.seconds(10)
    static let trimInterval = TimeAmount.seconds(10)

    /// When the lot's thread should trim next (under `lock`); nil: no burst pending.
    private var trimDueLocked: NIODeadline? {
        Self.trimDue(parked: parkedSinceTrim, first: firstParkedAt, last: lastParkedAt, lastTrim: lastTrim)
    }

    /// The trim rule (see the type): after `parked` connections parked since `lastTrim`, the
    /// first and the last at `first` and `last`.
    static func trimDue(parked: Int, first: NIODeadline?, last: NIODeadline, lastTrim: NIODeadline) -> NIODeadline? {
        guard parked >= trimBatch, let first else { return nil }
        return max(min(last + trimQuiet, first + trimMaxDelay), lastTrim + trimInterval)
    }

    init(logger: Logger) { self.logger = logger }

    /// Sockets parked now.
    var count: Int { lock.withLock { waiting.count } }

    /// Starts watching `socket`. False when the lot is stopped or the watch cannot be set up
    /// (the connection then stays on its channel).
    func add(_ socket: ParkedSocket) -> Bool {
        lock.withLock {
            guard !stopped else { return false }
            if ep < 0 {
                var w: CInt = -1
                let e = swiftlet_watch_create(&w)
                guard e >= 0 else {
                    logger.warning("connection parking unavailable: epoll set not created", metadata: ["errno": "\(errno)"])
                    stopped = true
                    return false
                }
                let wake = w
                ep = e
                wakeFD = wake
                let thread = Thread { [self] in run(ep: e, wakeFD: wake) }
                thread.name = "swiftlet-parking"
                thread.start()
            }
            let token = nextToken
            nextToken += 1
            guard swiftlet_watch_add(ep, socket.fd, token) == 0 else { return false }
            socket.token = token
            waiting[token] = socket
            let now = NIODeadline.now()
            parkedSinceTrim += 1
            lastParkedAt = now
            if firstParkedAt == nil { firstParkedAt = now }
            // The thread waits without a deadline until a burst is big enough.
            if parkedSinceTrim == Self.trimBatch { swiftlet_watch_wake(wakeFD) }
            return true
        }
    }

    /// Stops watching `socket` (it is being unparked or closed): from here on its descriptor
    /// is the caller's. A socket the lot's thread already reported is left to that report,
    /// which finds it no longer parked.
    func remove(_ socket: ParkedSocket) {
        lock.withLock {
            waiting.removeValue(forKey: socket.token)
            if ep >= 0 { _ = swiftlet_watch_remove(ep, socket.fd) }
        }
    }

    /// Ends the lot's thread and waits (up to a second) until it no longer hands sockets to
    /// the loops, which stop next. Sockets still parked stay open until their connections
    /// close them.
    func stop() {
        let running = lock.withLock { () -> Bool in
            guard !stopped else { return false }
            stopped = true
            guard wakeFD >= 0 else { return false }
            swiftlet_watch_wake(wakeFD)
            return true
        }
        if running { _ = exited.wait(timeout: .now() + 1) }
    }

    /// Signalled when the lot's thread ends.
    private let exited = DispatchSemaphore(value: 0)

    /// Gives the pages of parked connections' channels back to the system (see the type).
    private func trimIfDue() {
        let now = NIODeadline.now()
        let batch = lock.withLock { () -> Int? in
            guard let due = trimDueLocked, due <= now else { return nil }
            lastTrim = now
            firstParkedAt = nil
            defer { parkedSinceTrim = 0 }
            return parkedSinceTrim
        }
        guard let batch else { return }
        let before = ProcStats.memory()?.rssBytes
        Heap.trim()
        let after = ProcStats.memory()?.rssBytes
        logger.debug("memory of parked connections released", metadata: [
            "parked": "\(batch)", "took_ms": "\(Double((NIODeadline.now() - now).nanoseconds) / 1e6)",
            "rss_released_bytes": "\((before ?? 0) - (after ?? 0))"])
    }

    private func run(ep: CInt, wakeFD: CInt) {
        var tokens = [UInt64](repeating: 0, count: 64)
        var ready: [ParkedSocket] = []
        while true {
            let due = lock.withLock { trimDueLocked }
            var timeout: Int32 = -1
            if let due {
                let now = NIODeadline.now()
                timeout = due <= now ? 0 : Int32(clamping: (due - now).nanoseconds / 1_000_000 + 1)
            }
            let n = tokens.withUnsafeMutableBufferPointer {
                swiftlet_watch_wait(ep, wakeFD, $0.baseAddress, Int32($0.count), timeout)
            }
            if n < 0 {
                logger.error("connection parking stopped: epoll_wait failed", metadata: ["errno": "\(errno)"])
                lock.withLock { stopped = true }
            }
            let stop = lock.withLock { () -> Bool in
                for i in 0..<max(0, Int(n)) where tokens[i] != 0 {
                    if let s = waiting.removeValue(forKey: tokens[i]) { ready.append(s) }
                }
                return stopped
            }
            for s in ready { s.eventLoop.execute { s.readable() } }
            ready.removeAll(keepingCapacity: true)
            if stop { break }
            trimIfDue()
        }
        lock.withLock {
            close(ep)
            close(wakeFD)
            self.ep = -1
            self.wakeFD = -1
        }
        exited.signal()
    }
}

/// A parked connection's transport: its socket's descriptor (a duplicate the connection owns
/// once the channel is gone). Every call runs on the connection's loop. Any write, flush or
/// close unparks the connection and goes to the new channel; a parked connection therefore
/// never writes here itself. Kept small (one per parked connection): what is only needed
/// while a channel is being made lives in `Waking`.
final class ParkedSocket: MQTTTransport {
    enum State: UInt8 { case parked, waking, handedBack, closed }
    private(set) var state = State.parked
    let fd: CInt
    /// The lot's key for this socket.
    var token: UInt64 = 0
    unowned let eventLoop: EventLoop
    /// The connection, until its new channel is active (a cycle broken at hand-back or failure).
    private var handler: MQTTConnectionHandler?
    private var waking: Waking?

    /// From the start of unparking: what was written before the new channel was active, and
    /// the new channel's transport once it is (calls through a stale reference go there).
    private final class Waking {
        var successor: MQTTTransport?
        var pending: [ByteBuffer] = []
        var flushRequested = false
        var closeRequest: CloseRequest?
    }

    private enum CloseRequest { case now(EventLoopPromise<Void>?), afterLinger(TimeAmount) }

    init(fd: CInt, handler: MQTTConnectionHandler) {
        self.fd = fd
        self.eventLoop = handler.eventLoop
        self.handler = handler
    }

    private static let allocator = ByteBufferAllocator()
    var transportAllocator: ByteBufferAllocator { Self.allocator }
    var transportIsWritable: Bool { state != .closed }
    var transportIsActive: Bool { state != .closed }
    /// Parked after CONNECT: the peer's address is in the connection already.
    var transportRemoteAddress: SocketAddress? { nil }

    /// Unparks if parked; the live transport once there is one.
    private func wake() -> MQTTTransport? {
        if state == .parked { handler?.unpark(self) }
        return waking?.successor
    }

    func transportWrite(_ bytes: ByteBuffer) {
        if let t = wake() { return t.transportWrite(bytes) }
        if state == .waking { waking?.pending.append(bytes) }
    }

    func transportFlush() {
        if let t = wake() { return t.transportFlush() }
        if state == .waking { waking?.flushRequested = true }
    }

    func transportClose(promise: EventLoopPromise<Void>?) {
        if let t = wake() { return t.transportClose(promise: promise) }
        if state == .waking { waking?.closeRequest = .now(promise) } else { promise?.succeed(()) }
    }

    func transportCloseAfterLinger(_ linger: TimeAmount) {
        if let t = wake() { return t.transportCloseAfterLinger(linger) }
        if state == .waking { waking?.closeRequest = .afterLinger(linger) }
    }

    /// The lot saw the socket readable (data or the peer's close).
    func readable() {
        _ = wake()
    }

    /// Unparking began: the descriptor is NIO's from here on.
    func beginWaking() {
        state = .waking
        waking = Waking()
    }

    /// The new channel is active: what was written meanwhile goes to it.
    func handBack(to t: MQTTTransport) {
        state = .handedBack
        handler = nil
        guard let w = waking else { return }
        w.successor = t
        let writes = w.pending
        w.pending = []
        for b in writes { t.transportWrite(b) }
        if w.flushRequested { t.transportFlush() }
        switch w.closeRequest {
        case .now(let p): t.transportClose(promise: p)
        case .afterLinger(let l): t.transportCloseAfterLinger(l)
        case nil: break
        }
        w.closeRequest = nil
    }

    /// No channel could be made: the connection is gone.
    func failed() {
        state = .closed
        handler = nil
        if case .now(let p) = waking?.closeRequest { p?.succeed(()) }
        waking = nil
    }
}

/// The descriptor of an accepted socket's channel.
enum ChannelDescriptor {
    /// SwiftNIO has no API that hands out a channel's descriptor, so it is read from the
    /// channel's description ("SocketChannel { BaseSocket { fd=N }, ... }") and checked against
    /// the channel's own local and remote addresses; nil when either fails (an `EmbeddedChannel`,
    /// a changed description), and the connection is then never parked.
    static func of(_ channel: Channel) -> CInt? {
        let text = String(describing: channel)
        guard text.hasPrefix("SocketChannel {"), let r = text.range(of: "fd=") else { return nil }
        guard let fd = CInt(text[r.upperBound...].prefix(while: { $0.isASCII && $0.isNumber })), fd >= 0 else { return nil }
        guard let remote = endpoint(fd, peer: true), remote == hostPort(channel.remoteAddress),
              let local = endpoint(fd, peer: false), local == hostPort(channel.localAddress) else { return nil }
        return fd
    }

    private struct HostPort: Equatable {
        let host: String
        let port: Int
    }

    private static func hostPort(_ a: SocketAddress?) -> HostPort? {
        guard let a, let host = a.ipAddress, let port = a.port else { return nil }
        return HostPort(host: host, port: port)
    }

    private static func endpoint(_ fd: CInt, peer: Bool) -> HostPort? {
        var buf = [CChar](repeating: 0, count: 64)
        var port: CInt = 0
        let r = buf.withUnsafeMutableBufferPointer { swiftlet_socket_endpoint(fd, peer ? 1 : 0, $0.baseAddress, $0.count, &port) }
        guard r == 0 else { return nil }
        return HostPort(host: buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, port: Int(port))
    }
}
