import SidecarLinkKit
import SwiftletAuth
import SwiftletConfig
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwiftletIPC

/// What a gateway session needs from the broker: an ordinary MQTT connection on one of its
/// loops, whose transport the session becomes.
typealias GatewayConnector = @Sendable (_ peerHost: String, _ peerPort: Int, _ listener: String) -> MQTTConnectionHandler

/// The broker's side of its sidecars: the socket they connect to, who is connected under
/// which name, their auth providers, hook subscriptions and ctl commands.
public final class SidecarHub: BrokerPart, @unchecked Sendable {
    public let name = "sidecar socket"
    let group: EventLoopGroup
    let config: SidecarsConfig
    let socketPath: String
    let nodeName: String
    let logger: Logger
    /// The chain sidecar auth providers join and whose cache their events clear.
    let auth: AuthChain
    /// Where sidecars' ctl commands are registered.
    let control: ControlRegistry
    /// Makes the MQTT connection behind a gateway session, on one of the broker's loops.
    let openGatewayConnection: GatewayConnector
    public let hooks = HookBus()
    private let lock = NIOLock()
    private var connections: [String: SidecarConnection] = [:]
    private var providers: [String: SidecarProvider] = [:]
    /// Names whose connection was lost at least once (a reconnect is a restart).
    private var seen: Set<String> = []
    private var serverChannel: Channel?
    /// Told when a sidecar's connection ends (the supervisor restarts managed ones that hang).
    var onDisconnect: (@Sendable (_ name: String, _ reason: SidecarCloseReason) -> Void)?
    /// A reload's new process, by name: its registration takes over from the old connection
    /// instead of replacing it (`SidecarHandOver`).
    private var successors: [String: Int32] = [:]
    /// Told when the expected successor registered, with the connection it took over from.
    var onHandOver: (@Sendable (_ name: String, _ old: SidecarConnection?) -> Void)?

    init(config: BrokerConfig, group: EventLoopGroup, logger: Logger, auth: AuthChain, control: ControlRegistry,
         openGatewayConnection: @escaping GatewayConnector) {
        self.config = config.sidecars
        self.group = group
        self.socketPath = config.sidecarSocketPath
        self.nodeName = config.nodeName
        self.auth = auth
        self.control = control
        self.openGatewayConnection = openGatewayConnection
        var l = logger
        l[metadataKey: "component"] = "sidecars"
        self.logger = l
    }

    // MARK: Socket

    public func start() async throws {
        let dir = (socketPath as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let conn = SidecarConnection(hub: self, eventLoop: channel.eventLoop,
                                                 peer: "\(channel.remoteAddress?.description ?? "unix")", logger: logger)
                    try channel.pipeline.syncOperations.addHandler(PeerCredentialCheck(allowGroup: config.socketMode & 0o070 != 0,
                                                                                       logger: logger) { conn.peerPid = $0.pid })
                    try channel.pipeline.syncOperations.addHandler(conn)
                }
            }
        // Umask first so the socket never exists with wider permissions than configured.
        let old = umask(0o177)
        defer { umask(old) }
        let ch = try await bootstrap.bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).get()
        chmod(socketPath, mode_t(config.socketMode))
        lock.withLock { serverChannel = ch }
        logger.info("sidecar socket listening", metadata: ["sidecars.socket": "\(socketPath)",
                                                           "sidecars.mode": "\(String(config.socketMode, radix: 8))"])
    }

    public func stop() async {
        let (ch, conns) = lock.withLock { (serverChannel, Array(connections.values)) }
        for c in conns { c.close(.brokerShutdown) }
        try? await ch?.close()
        unlink(socketPath)
    }

    // MARK: Registry

    func connection(named name: String) -> SidecarConnection? { lock.withLock { connections[name] } }

    public struct Info: Sendable {
        public var name: String
        public var version: String
        public var capabilities: [IPCCapability]
        public var hooks: [String]
        public var hookQueue: Int
        public var hookDropped: Int
        public var hookDelivered: Int
        /// Open gateway sessions (SPEC 7).
        public var gatewaySessions: Int
        /// The process on the other end (SO_PEERCRED); 0 unknown.
        public var pid: Int32
    }

    public var connected: [Info] {
        lock.withLock { connections.values.map {
            Info(name: $0.name, version: $0.sidecarVersion, capabilities: $0.capabilities, hooks: $0.acceptedHooks,
                 hookQueue: $0.hookQueue.count, hookDropped: $0.hookQueue.dropped, hookDelivered: $0.hookQueue.delivered,
                 gatewaySessions: $0.gatewaySessionCount.load(ordering: .relaxed), pid: $0.peerPid)
        }.sorted { $0.name < $1.name } }
    }

    /// The process `pid` (a reload's new one) will register as `name` and take over.
    func expectSuccessor(_ name: String, pid: Int32) {
        lock.withLock { successors[name] = pid }
    }

    func cancelSuccessor(_ name: String) {
        _ = lock.withLock { successors.removeValue(forKey: name) }
    }

    func registered(_ c: SidecarConnection) {
        let (previous, restart, provider, handOver): (SidecarConnection?, Bool, SidecarProvider?, Bool) = lock.withLock {
            let prev = connections[c.name]
            // The peer's pid comes from SO_PEERCRED (0 where it could not be read).
            let handOver = successors[c.name].map { c.peerPid == 0 || c.peerPid == $0 } ?? false
            if handOver { successors[c.name] = nil }
            connections[c.name] = c
            let restart = seen.contains(c.name)
            seen.insert(c.name)
            let wantsAuth = c.capabilities.contains { if case .authn = $0 { return true }; if case .authz = $0 { return true }; return false }
            var p = providers[c.name]
            if wantsAuth && p == nil {
                p = SidecarProvider(name: c.name, hub: self)
                providers[c.name] = p
            }
            return (prev, restart, p, handOver)
        }
        if let previous, previous !== c {
            // A hand-over: the old connection stays open until its requests are answered
            // (the supervisor stops its process then), but gets no new work, hooks included.
            if handOver { hooks.remove(previous) } else { previous.close(.replaced) }
        }
        if let provider {
            provider.update(c.capabilities)
            auth.add(provider)
        }
        hooks.add(c)
        // Answers given by the sidecar's previous life may no longer hold.
        let dropped = auth.invalidate(.all)
        if restart && !handOver { auth.stats(c.name).restarted() }
        logger.info("sidecar registered", metadata: [
            "sidecar.name": "\(c.name)", "sidecar.hooks": "\(c.acceptedHooks.joined(separator: ","))",
            "sidecar.capabilities": "\(c.capabilities.count)", "auth.cache_dropped": "\(dropped)"])
        registerCommands(c)
        if handOver { onHandOver?(c.name, previous) }
    }

    func disconnected(_ c: SidecarConnection, reason: SidecarCloseReason) {
        hooks.remove(c)
        let current = lock.withLock { () -> Bool in
            guard connections[c.name] === c else { return false }
            connections[c.name] = nil
            return true
        }
        if current {
            unregisterCommands(c)
            onDisconnect?(c.name, reason)
        }
    }

    /// A sidecar that says GOODBYE leaves the chain (an external sidecar going away on
    /// purpose); one that crashes stays in it and answers `error` until it is back.
    func saidGoodbye(_ c: SidecarConnection) {
        // The old process of a hand-over says GOODBYE too: the provider is its successor's now.
        guard lock.withLock({ connections[c.name] === c }) else { return }
        removeProvider(named: c.name)
    }

    /// Takes a sidecar out of the chain for good (plugins unload).
    func removeProvider(named name: String) {
        let p = lock.withLock { providers.removeValue(forKey: name) }
        if p != nil {
            auth.remove(named: name)
            auth.invalidate(.all)
        }
    }

    func invalidate(scope: UInt8, value: String, from c: SidecarConnection) {
        let n: Int
        switch scope {
        case 0: n = auth.invalidate(.all)
        case 1: n = auth.invalidate(.username(value))
        default: n = auth.invalidate(.clientId(value))
        }
        logger.info("cache invalidated by sidecar", metadata: [
            "sidecar.name": "\(c.name)", "auth.scope": "\(["all", "username", "client_id"][Int(min(scope, 2))])",
            "auth.value": "\(value)", "auth.cache_dropped": "\(n)"])
    }
}
