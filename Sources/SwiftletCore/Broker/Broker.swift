import MQTTProtocol
import SwiftletStore
import SwiftletRouting
import SwiftletAuth
import SwiftletConfig
import Atomics
import Foundation
import Logging
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// The broker: event loops with their routing replicas, the session registry, retained
/// store, listeners and $SYS. One instance per process.
public final class Broker: @unchecked Sendable {
    public static let version = "0.1.0"

    /// The configuration the broker started with. `[mqtt]` and listener limits may since have
    /// changed (`reload config`): read them from `connectionPolicy` and the listener's state.
    public let config: BrokerConfig
    /// The MQTT limits of new connections, replaced as a whole by `reload config`. A
    /// connection reads it once, when it is accepted, and keeps that object (no lock per packet).
    var connectionPolicy: ConnectionPolicy { policyBox.withLockedValue { $0 } }
    private let policyBox: NIOLockedValueBox<ConnectionPolicy>
    public let logger: Logger
    let group: EventLoopGroup
    private let ownsGroup: Bool
    /// The loop that accepts connections on the broker's listeners, apart from the loops that
    /// serve them (nil when the broker runs on a group it was given, as tests do, or never
    /// parks connections: the serving loops accept).
    let acceptGroup: EventLoopGroup?
    let loopTable: LoopTable
    var loops: [LoopContext] { loopTable.loops }
    let registry = SessionRegistry()
    let retained: RetainedStore
    /// The durable store; nil with `persistence.mode = "none"`.
    private(set) var store: DurableStore?
    let router: Router
    public let startedAt = Date()
    /// The auth/ACL chain; the built-in provider is always in it.
    public let auth: AuthChain
    public let builtinAuth: BuiltinAuth
    /// Off-loop work: password hashing.
    let threadPool: NIOThreadPool
    /// Sockets of parked idle connections (`mqtt.park_after`); its thread starts at the first.
    let parkingLot: ParkingLot
    /// Sidecars: their socket, auth providers, hooks and ctl commands.
    public private(set) var sidecars: SidecarHub!
    /// Managed sidecars declared in `[sidecars] plugins_dir`.
    public private(set) var supervisor: Supervisor!
    /// `swiftlet-ctl` commands: the broker's own and those sidecars register.
    public let control = ControlRegistry()
    let controlServer: ControlServer
    /// Clients refused at CONNECT (`banned`).
    public let banned: BannedList
    let clientsConnected = ManagedAtomic<Int>(0)
    let clientsMax = ManagedAtomic<Int>(0)
    let connectionsLock = NIOLock()
    var connections: [ObjectIdentifier: MQTTConnectionHandler] = [:]
    var serverChannels: [Channel] = []
    /// The configured listeners, in configuration order, once bound.
    var listeners: [ListenerState] { listenersLock.withLock { boundListeners } }
    private var boundListeners: [ListenerState] = []
    private let listenersLock = NIOLock()
    /// Listeners named by gateways and the embedded one (tests, benchmarks): counted the same way.
    private var otherListeners: [String: ListenerState] = [:]
    var sysTask: RepeatedTask?
    let shuttingDown = ManagedAtomic<Bool>(false)
    /// The file the configuration came from (`swiftlet --config`); `reload config` reads it again.
    public var configFile: String?
    /// The live log level, when the process's loggers follow one (`reload config`).
    public var logLevels: LogLevelSwitch?
    let appliedConfig: AppliedConfig

    /// A broker on its own event loop group of `threads` loops.
    public convenience init(config: BrokerConfig, logger: Logger, threads: Int = System.coreCount) {
        self.init(config: config, logger: logger, group: MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads)), ownsGroup: true)
    }

    /// A broker on a given group (tests pass an `EmbeddedEventLoop` as a manual clock).
    public init(config: BrokerConfig, logger: Logger, group: EventLoopGroup, ownsGroup: Bool = false) {
        self.config = config
        self.appliedConfig = AppliedConfig(config)
        self.policyBox = NIOLockedValueBox(ConnectionPolicy(config.mqtt))
        self.logger = logger
        self.group = group
        self.ownsGroup = ownsGroup
        // Only for parking (its memory goes back to the system when channels are made apart
        // from connections' state, docs/decisions/0009): with park_after = 0 the loops accept.
        self.acceptGroup = ownsGroup && config.mqtt.parkAfter > 0 ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        self.retained = RetainedStore(maxCount: config.mqtt.maxRetainedMessages, maxBytes: config.mqtt.maxRetainedBytes)
        self.threadPool = NIOThreadPool(numberOfThreads: 1)
        self.threadPool.start()
        self.parkingLot = ParkingLot(logger: logger)
        self.auth = AuthChain(config: config.auth, allowAnonymous: config.mqtt.allowAnonymous, logger: logger)
        self.builtinAuth = BuiltinAuth(usersPath: config.auth.usersFile, aclPath: config.auth.aclFile,
                                       order: config.auth.builtinOrder, pool: threadPool)
        self.auth.add(builtinAuth)
        self.banned = BannedList(path: config.persistence.mode == .none ? nil
                                 : (config.persistence.dataDir as NSString).appendingPathComponent("banned.json"))
        self.loopTable = LoopTable(group: group, sharedStrategy: config.mqtt.sharedStrategy)
        self.router = Router(table: loopTable)
        self.controlServer = ControlServer(path: config.ctlSocketPath, registry: control, group: group, logger: logger)
        self.sidecars = SidecarHub(config: config, group: group, logger: logger, auth: auth, control: control,
                                   openGatewayConnection: { [unowned self] host, port, listener in
            let ctx = self.loopContext(for: self.group.next())
            return MQTTConnectionHandler(broker: self, ctx: ctx, peerHost: host, peerPort: port,
                                         listener: self.listenerState(named: listener))
        })
        self.supervisor = Supervisor(config: config, loop: group.next(), logger: logger, hub: sidecars, control: control)
        self.parts = makeParts()
        registerBuiltinCommands()
    }

    /// `reload config`: the `[mqtt]` limits of connections accepted from now on, and the
    /// broker-wide ones (retained store, anonymous access, shared subscription strategy).
    func applyMQTTLimits(_ m: MQTTConfig) {
        policyBox.withLockedValue { $0 = ConnectionPolicy(m) }
        retained.setLimits(maxCount: m.maxRetainedMessages, maxBytes: m.maxRetainedBytes)
        auth.setAllowAnonymous(m.allowAnonymous)
        for ctx in loops {
            ctx.eventLoop.execute { ctx.sharedStrategy = m.sharedStrategy }
        }
    }

    func loopContext(for el: EventLoop) -> LoopContext {
        loopTable.context(for: el)
    }

    public var eventLoopGroup: EventLoopGroup { group }

    /// Bound addresses of the listeners, in configuration order (after `start`).
    public var boundAddresses: [SocketAddress] { serverChannels.compactMap { $0.localAddress } }

    // MARK: Lifecycle

    /// Adds a part (the dashboard, say) after the broker's own: it starts last and stops
    /// first. Before `start`/`services` only.
    public func add(_ part: any BrokerPart) {
        parts.append(part)
    }

    /// The long-running parts in start order (see `BrokerPart`); they stop in reverse.
    /// `services` runs them in a `ServiceGroup`; `start`/`shutdown` run them in turn.
    private(set) var parts: [any BrokerPart] = []
    private var started: [any BrokerPart] = []

    private func makeParts() -> [any BrokerPart] {
        [
            FunctionPart("event loops", start: {}, stop: { [unowned self] in
                parkingLot.stop()
                try? await threadPool.shutdownGracefully()
                try? await acceptGroup?.shutdownGracefully()
                if ownsGroup { try? await group.shutdownGracefully() }
                logger.info("stopped")
            }),
            FunctionPart("store", start: { [unowned self] in try await openStore() },
                         stop: { [unowned self] in store?.stop() }),
            sidecars,
            supervisor,
            controlServer,
            FunctionPart("listeners", start: { [unowned self] in try await bindListeners() },
                         stop: { [unowned self] in await closeListeners() }),
            FunctionPart("$SYS", start: { [unowned self] in
                startSys()
                logger.info("swiftlet \(Self.version) started", metadata: ["node": "\(config.nodeName)"])
            }, stop: { [unowned self] in
                logger.info("shutting down")
                sysTask?.cancel()
            }),
        ]
    }

    /// Starts every part in order; if one fails, those started stop (in reverse) and the
    /// error is thrown.
    public func start() async throws {
        for part in parts {
            do {
                try await part.start()
                started.append(part)
            } catch {
                logger.error("start failed", metadata: ["part": "\(part.name)", "error": "\(error)"])
                await shutdown()
                throw error
            }
        }
    }

    /// Stops the started parts in reverse order: stops listening, sends DISCONNECT 0x8B to
    /// 5.0 clients, closes every connection, then sidecars, store and loops.
    public func shutdown() async {
        guard shuttingDown.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        // The loops are released even when the broker never started.
        if !started.contains(where: { $0 === parts[0] }) { started.insert(parts[0], at: 0) }
        for part in started.reversed() { await part.stop() }
        started = []
    }

    private func openStore() async throws {
        if config.mqtt.allowAnonymous {
            logger.warning("anonymous access is allowed: any client can connect without credentials (set mqtt.allow_anonymous = false to refuse)")
        }
        let users = try builtinAuth.reloadUsers()
        let rules = try builtinAuth.reloadACL()
        logger.info("built-in auth loaded", metadata: ["auth.users": "\(users)", "auth.acl_rules": "\(rules)",
                                                       "auth.acl_file": "\(config.auth.aclFile ?? "(emqttd defaults)")"])
        guard config.persistence.mode != .none else { return }
        let store = DurableStore(path: config.persistence.storePath, mode: config.persistence.mode,
                                 commitInterval: config.persistence.commitInterval, logger: logger)
        let snapshot = try store.openAndLoad()
        self.store = store
        try await restore(snapshot)
        store.start()
        logger.info("durable store open", metadata: [
            "store.path": "\(config.persistence.storePath)", "store.mode": "\(config.persistence.mode.rawValue)",
            "store.sessions": "\(snapshot.sessions.count)", "store.retained": "\(snapshot.retained.count)"])
    }

    private func bindListeners() async throws {
        for l in config.listeners {
            let state = ListenerState(config: l, logger: logger)
            let ch = try await Listeners.bind(state, broker: self)
            serverChannels.append(ch)
            state.address = ch.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? ""
            listenersLock.withLock { boundListeners.append(state) }
            state.startLogWindows(on: ch.eventLoop)
            logger.info("listening", metadata: ["listener.type": "\(l.kind.rawValue)", "listener.address": "\(ch.localAddress.map { "\($0)" } ?? l.name)"])
        }
    }

    /// A listener that is not one of the broker's sockets (a gateway's, the embedded one).
    func listenerState(named name: String) -> ListenerState {
        listenersLock.withLock {
            if let l = otherListeners[name] { return l }
            let l = ListenerState(name: name, logger: logger)
            otherListeners[name] = l
            return l
        }
    }

    /// `swiftlet-ctl listeners reload-certs` and SIGHUP: every TLS listener reads its files
    /// again. New handshakes use the new files, open connections keep theirs; a listener whose
    /// new files fail keeps the ones it has. One result per TLS listener.
    public func reloadCertificates() -> [(listener: String, error: String?)] {
        listeners.filter { $0.config.isTLS }.map { l in
            do {
                try l.reloadTLS()
                return (l.name, nil)
            } catch {
                logger.error("TLS certificate reload refused; the listener keeps its current certificates",
                             metadata: ["listener": "\(l.name)", "error": "\(error)"])
                return (l.name, "\(error)")
            }
        }
    }

    /// Stops accepting, then ends every connection (DISCONNECT 0x8B to 5.0 clients).
    private func closeListeners() async {
        for ch in serverChannels { try? await ch.close() }
        for l in listeners { l.stop() }
        let conns = connectionsLock.withLock { Array(connections.values) }
        var closes: [EventLoopFuture<Void>] = []
        for c in conns {
            closes.append(c.eventLoop.flatSubmit { c.serverShutdown() })
        }
        _ = try? await EventLoopFuture.andAllComplete(closes, on: group.next()).get()
    }

    func register(_ c: MQTTConnectionHandler) {
        connectionsLock.withLock { connections[ObjectIdentifier(c)] = c }
    }

    func unregister(_ c: MQTTConnectionHandler) {
        connectionsLock.withLock { _ = connections.removeValue(forKey: ObjectIdentifier(c)) }
    }

    /// Publishes a broker-originated message from any thread.
    public func publish(_ message: Message) {
        let ctx = loops[0]
        ctx.eventLoop.execute {
            if message.retain { _ = self.retained.set(message) }
            ctx.stats.messagesReceived += 1
            ctx.route(message)
        }
    }

    /// Sums the counters of every loop.
    func collectStats() -> EventLoopFuture<LoopStats> {
        let futures = loops.map { ctx in ctx.eventLoop.submit { ctx.stats } }
        return EventLoopFuture.whenAllSucceed(futures, on: loops[0].eventLoop).map { $0.reduce(LoopStats(), +) }
    }
}

extension Broker {
    /// Installs the MQTT handlers on an already connected channel (on one of this broker's
    /// loops). Listeners use it for every accepted connection; benchmarks and tests use it
    /// with an `EmbeddedChannel`.
    public func attachConnection(to channel: Channel) throws {
        try Listeners.addMQTTHandlers(channel: channel, broker: self, listener: listenerState(named: "embedded"))
    }
}
