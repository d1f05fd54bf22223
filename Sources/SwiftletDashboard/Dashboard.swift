import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SwiftletConfig
import SwiftletCore

/// The dashboard: web UI, REST API under /api/v5 and Prometheus metrics, on its own
/// Hummingbird server and its own event loops (`acceptors` threads), so a slow or flooding
/// HTTP client never runs on an MQTT loop. A `BrokerPart`: added after the broker's own
/// parts, it starts last and stops first.
///
/// Every endpoint that reads or changes the broker runs a ctl command through the broker's
/// `ControlRegistry`, the same code `swiftlet-ctl` runs, and reshapes its JSON answer.
public final class Dashboard: BrokerPart, @unchecked Sendable {
    public let name = "dashboard"
    let config: DashboardConfig
    let control: ControlRegistry
    let broker: BrokerFacade
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let admins: AdminStore
    let tokens: TokenStore
    let limiter: LoginLimiter
    let metrics: MetricsExporter
    let monitor: Monitor
    let wwwDirectory: String?
    let pluginsDirectory: String?
    let startedAt = Date()
    private var task: Task<Void, Error>?
    private var serviceGroup: ServiceGroup?
    private var boundAddress: SocketAddress?

    /// What the dashboard needs of the broker beyond ctl commands.
    public struct BrokerFacade: Sendable {
        public var nodeName: String
        public var version: String
        public var publish: @Sendable (_ topic: String, _ payload: ByteBuffer, _ qos: Int, _ retain: Bool) -> Void
        /// The counters `swiftlet-ctl status` shows, read directly (sampled once a second).
        public var status: @Sendable () async throws -> [String: Int]
        public init(nodeName: String, version: String,
                    publish: @escaping @Sendable (_ topic: String, _ payload: ByteBuffer, _ qos: Int, _ retain: Bool) -> Void,
                    status: @escaping @Sendable () async throws -> [String: Int]) {
            self.nodeName = nodeName
            self.version = version
            self.publish = publish
            self.status = status
        }
    }

    public init(config: BrokerConfig, control: ControlRegistry, broker: BrokerFacade, logger: Logger) {
        self.config = config.dashboard
        self.control = control
        self.broker = broker
        var l = logger
        l[metadataKey: "component"] = "dashboard"
        self.logger = l
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: config.dashboard.acceptors)
        self.pool = NIOThreadPool(numberOfThreads: 1)
        self.admins = AdminStore(path: config.dashboardAdminsPath, pool: pool)
        self.tokens = TokenStore(ttl: config.dashboard.tokenExpiry)
        self.limiter = LoginLimiter(perMinute: config.dashboard.loginAttemptsPerMinute)
        self.metrics = MetricsExporter(nodeName: config.nodeName)
        self.monitor = Monitor()
        self.wwwDirectory = Self.findWWW()
        self.pluginsDirectory = config.sidecars.pluginsDir
    }

    /// The UI's files: `swiftlet_SwiftletDashboard.resources/www` next to the executable
    /// (where SwiftPM copies them), or `SWIFTLET_WWW`. Without them the API still runs.
    static func findWWW() -> String? {
        if let env = ProcessInfo.processInfo.environment["SWIFTLET_WWW"] { return env }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for candidate in [exe.appendingPathComponent("swiftlet_SwiftletDashboard.resources/www"),
                          exe.appendingPathComponent("swiftlet_SwiftletDashboard.resources")] {
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("index.html").path) { return candidate.path }
        }
        return nil
    }

    public func start() async throws {
        pool.start()
        try await admins.load(defaultUsername: config.defaultUsername, defaultPassword: config.defaultPassword)
        if admins.admin(config.defaultUsername)?.mustChange == true {
            logger.warning("dashboard admin \(config.defaultUsername) has its default password: it must be changed at first login")
        }
        registerCtl()
        let router = makeRouter()
        let server: HTTPServerBuilder
        if let cert = config.certFile, let key = config.keyFile {
            let chain: [NIOSSLCertificateSource]
            let privateKey: NIOSSLPrivateKey
            do { chain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) } } catch {
                throw APIError(.internalServerError, "INTERNAL_ERROR", "dashboard.certfile \(cert): \(error)")
            }
            do { privateKey = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
                throw APIError(.internalServerError, "INTERNAL_ERROR", "dashboard.keyfile \(key): \(error)")
            }
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(privateKey))
            tls.minimumTLSVersion = .tlsv12
            server = try .tls(.http1(), tlsConfiguration: tls)
        } else {
            server = .http1()
        }
        let (running, continuation) = AsyncStream<SocketAddress?>.makeStream()
        let app = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "swiftlet",
                                 availableConnectionsDelegate: MaximumAvailableConnections(config.maxClients)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress)
                continuation.finish()
            },
            eventLoopGroupProvider: .shared(group), logger: logger)
        let sg = ServiceGroup(configuration: .init(services: [app, monitor.service(self)], logger: logger))
        serviceGroup = sg
        let logger = self.logger
        task = Task {
            do { try await sg.run() } catch {
                logger.error("dashboard stopped: \(error)")
                continuation.finish()
                throw error
            }
        }
        var it = running.makeAsyncIterator()
        guard let address = await it.next() else {
            // The server failed before it listened (address in use, bad certificate).
            if let task { _ = try await task.value }
            throw APIError(.internalServerError, "INTERNAL_ERROR", "dashboard did not start")
        }
        boundAddress = address
        logger.info("dashboard listening", metadata: ["dashboard.address": "\(address.map { "\($0)" } ?? "\(config.host):\(config.port)")",
                                                      "dashboard.tls": "\(config.certFile != nil)",
                                                      "dashboard.ui": "\(wwwDirectory ?? "(not found)")"])
    }

    public func stop() async {
        control.unregister(owner: Self.ctlOwner)
        monitor.stopped.store(true, ordering: .relaxed)
        await serviceGroup?.triggerGracefulShutdown()
        _ = try? await task?.value
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }

    // MARK: ctl

    /// Runs a ctl command; a usage error or failure becomes an API error.
    func ctl(_ command: String, _ args: [String], notFound: String? = nil) async throws -> Any {
        let reply = try await control.dispatch(command, args: args, on: group.next()).get()
        switch reply.status {
        case ControlReply.ok: return JSON.parse(reply.json) ?? [:] as [String: Any]
        case ControlReply.usageError: throw APIError.badRequest(reply.text)
        default:
            if let notFound, reply.text.hasPrefix("no ") || reply.text.contains("not found") || reply.text.contains("is not banned") {
                throw APIError.notFound(reply.text, code: notFound)
            }
            throw APIError.badRequest(reply.text)
        }
    }
}
