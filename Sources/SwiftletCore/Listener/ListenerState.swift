import SwiftletConfig
import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One configured listener while the broker runs: its connection counts, what it refused,
/// its rate-limited log of refused and malformed connections, and its current TLS context.
/// Shared by every event loop; nothing here is touched per packet.
final class ListenerState: @unchecked Sendable {
    /// Why a connection was closed before it became an MQTT client.
    enum Refusal: String, CaseIterable {
        case maxConnections = "max_connections"
        case rate = "max_conn_rate"
        case tls = "tls_handshake"
        case revoked = "certificate_revoked"
        case websocket = "websocket_upgrade"
        case proxy = "proxy_protocol"
        case connect = "connect_refused"
    }

    /// As configured at start; `max_connections` and `max_conn_rate` may have changed since
    /// (`limits`).
    let config: ListenerConfig
    let name: String
    /// `max_connections` and `max_conn_rate` in force: `reload config` changes them and the
    /// accept gate reads them for each accepted socket.
    let maxConnections: ManagedAtomic<Int>
    let maxConnRate: ManagedAtomic<Int>
    /// The bound address ("host:port"), set once at bind.
    var address = ""
    private let logger: Logger
    /// Open connections (accepted, not yet closed).
    let current = ManagedAtomic<Int>(0)
    let accepted = ManagedAtomic<Int>(0)
    let malformed = ManagedAtomic<Int>(0)
    let logSuppressed = ManagedAtomic<Int>(0)
    private let lock = NIOLock()
    private var refusals: [Refusal: Int] = [:]
    private var tls: ListenerTLS?
    private var tlsLoadedAt: NIODeadline?
    // The log window: lines written in it, and what was held back (by kind).
    private var windowWritten = 0
    private var windowRefused = 0
    private var windowMalformed = 0
    private var logTask: RepeatedTask?

    /// `name`: for a listener that is not a socket of the broker's (a gateway's, an embedded one).
    init(config: ListenerConfig, logger: Logger, name: String? = nil) {
        self.config = config
        self.name = name ?? config.name
        self.logger = logger
        self.maxConnections = ManagedAtomic(config.maxConnections)
        self.maxConnRate = ManagedAtomic(config.maxConnRate)
    }

    /// `reload config`: limits for the next accepted sockets. Connections already open stay,
    /// even above a lowered `max_connections`.
    func setLimits(maxConnections: Int, maxConnRate: Int) {
        self.maxConnections.store(maxConnections, ordering: .relaxed)
        self.maxConnRate.store(maxConnRate, ordering: .relaxed)
    }

    /// A gateway's (or an embedded) listener.
    convenience init(name: String, logger: Logger) {
        self.init(config: ListenerConfig(kind: .tcp, host: name, port: 0), logger: logger, name: name)
    }

    // MARK: TLS

    /// Loads the TLS files (at bind).
    func loadTLS() throws {
        let loaded = try ListenerTLS.load(config)
        lock.withLock {
            tls = loaded
            tlsLoadedAt = .now()
        }
    }

    /// The context new handshakes use.
    var currentTLS: ListenerTLS? { lock.withLock { tls } }

    /// Reads the files again; on any problem the context in use stays and the error is thrown.
    func reloadTLS() throws {
        guard config.isTLS else { return }
        install(try ListenerTLS.load(config))
    }

    /// A context loaded (and so checked) beforehand: new handshakes use it.
    func install(_ loaded: ListenerTLS) {
        lock.withLock {
            tls = loaded
            tlsLoadedAt = .now()
        }
        logger.notice("TLS certificates reloaded; new handshakes use them", metadata: ["listener": "\(name)"])
    }

    // MARK: Refused and malformed connections

    /// Counts a connection open until `channel` closes (`current`): an accepted socket's
    /// channel, or the channel a parked connection is resumed on.
    func countOpen(until channel: Channel) {
        let current = self.current
        channel.closeFuture.whenComplete { _ in current.wrappingDecrement(ordering: .relaxed) }
    }

    func refusedCount(_ r: Refusal) -> Int { lock.withLock { refusals[r] ?? 0 } }
    var refusedTotal: Int { lock.withLock { refusals.values.reduce(0, +) } }
    var refusedByReason: [(Refusal, Int)] {
        lock.withLock { Refusal.allCases.map { ($0, refusals[$0] ?? 0) } }
    }

    /// Counts a refusal and logs it unless this window's lines are used up.
    func refused(_ why: Refusal, peer: SocketAddress?, detail: String) {
        refused(why, peer: peer.map(Self.describe) ?? "unknown", detail: detail)
    }

    func refused(_ why: Refusal, peer: String, detail: String) {
        let write = lock.withLock { () -> Bool in
            refusals[why, default: 0] += 1
            return takeLine(refused: true)
        }
        guard write else { return }
        logger.info("connection refused", metadata: ["listener": "\(name)", "mqtt.peer": "\(peer)",
                                                     "reason": "\(why.rawValue)", "detail": "\(detail)"])
    }

    /// Counts a connection closed on undecodable input and logs it within the limit.
    func malformed(peer: String, detail: String, clientId: String) {
        malformed.wrappingIncrement(ordering: .relaxed)
        guard lock.withLock({ takeLine(refused: false) }) else { return }
        var meta: Logger.Metadata = ["listener": "\(name)", "mqtt.peer": "\(peer)", "error": "\(detail)"]
        if !clientId.isEmpty { meta["mqtt.client_id"] = "\(clientId)" }
        logger.info("closing on invalid input", metadata: meta)
    }

    /// Under the lock.
    private func takeLine(refused: Bool) -> Bool {
        if windowWritten < config.logLimit {
            windowWritten += 1
            return true
        }
        if refused { windowRefused += 1 } else { windowMalformed += 1 }
        logSuppressed.wrappingIncrement(ordering: .relaxed)
        return false
    }

    /// Ends a log window: one summary line when lines were held back.
    func endLogWindow() {
        let (refused, malformed) = lock.withLock { () -> (Int, Int) in
            defer { windowWritten = 0; windowRefused = 0; windowMalformed = 0 }
            return (windowRefused, windowMalformed)
        }
        guard refused + malformed > 0 else { return }
        logger.notice("refused/malformed connection lines suppressed", metadata: [
            "listener": "\(name)", "suppressed": "\(refused + malformed)", "suppressed.refused": "\(refused)",
            "suppressed.malformed": "\(malformed)", "interval_seconds": "\(config.logInterval)"])
    }

    func startLogWindows(on loop: EventLoop) {
        let every = TimeAmount.milliseconds(Int64(config.logInterval * 1000))
        logTask = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [weak self] _ in self?.endLogWindow() }
    }

    func stop() {
        logTask?.cancel()
        logTask = nil
        endLogWindow()
    }

    static func describe(_ a: SocketAddress) -> String {
        guard let ip = a.ipAddress else { return "\(a)" }
        return ip.contains(":") ? "[\(ip)]:\(a.port ?? 0)" : "\(ip):\(a.port ?? 0)"
    }
}
