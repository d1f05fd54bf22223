import SwiftletConfig
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SwiftletCore
import SwiftletDashboard
import SwiftletRouting
import MQTTCodec
import SwiftletStore

@main
struct SwiftletCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftlet",
        abstract: "Swiftlet MQTT broker (MQTT 3.1, 3.1.1 and 5.0).",
        discussion: "With no --config, runs on the embedded defaults: MQTT on 0.0.0.0:1883 with anonymous access.",
        version: Broker.version)

    /// glibc's per-thread malloc cache is turned off before anything else runs (a
    /// re-execution; docs/decisions/0010-malloc-thread-cache.md).
    static func main() async {
        threadCacheProblem = Heap.turnThreadCacheOff()
        await main(nil)
    }
    /// Set before any thread starts, read once the logger exists.
    nonisolated(unsafe) static var threadCacheProblem: String?

    @Option(name: .long, help: "TOML configuration file (see etc/swiftlet.toml and docs/configuration.md).")
    var config: String?

    @Option(name: .long, help: "Node name used in $SYS topics (overrides node.name).")
    var nodeName: String?

    @Flag(name: .long, help: "Check the configuration file and exit.")
    var checkConfig = false

    @Flag(name: .long, help: "Check the durable store (persistence.data_dir) without starting; exit 1 if damaged.")
    var checkStore = false

    func run() async throws {
        var cfg = BrokerConfig()
        if let config {
            do {
                cfg = try ConfigLoader.load(path: config)
            } catch let e as ConfigError {
                FileHandle.standardError.write(Data("swiftlet: \(config): \(e)\n".utf8))
                throw ExitCode(2)
            }
        }
        if let nodeName {
            guard !nodeName.isEmpty, !nodeName.contains(where: { "/+#".contains($0) }) else {
                FileHandle.standardError.write(Data("swiftlet: --node-name must be non-empty and contain no '/', '+' or '#'\n".utf8))
                throw ExitCode(2)
            }
            cfg.nodeName = nodeName
        }
        if checkConfig {
            // TLS files too: missing, unreadable or mismatched ones are named with their key.
            let problems = Listeners.checkFiles(cfg)
            guard problems.isEmpty else {
                for p in problems { FileHandle.standardError.write(Data("swiftlet: \(config ?? "defaults"): \(p)\n".utf8)) }
                throw ExitCode(2)
            }
            print("configuration OK")
            return
        }
        if checkStore {
            let (ok, report) = StoreInspector.check(cfg)
            print(report, terminator: "")
            if !ok { throw ExitCode(1) }
            return
        }
        // One level for every logger, changeable by `swiftlet-ctl reload config`.
        let levels = LogLevelSwitch(cfg.logLevel)
        LoggingSystem.bootstrap { label in
            SwitchedLogHandler(StreamLogHandler.standardError(label: label), levels: levels)
        }
        let logger = Logger(label: "swiftlet")
        if let problem = Self.threadCacheProblem { logger.warning("\(problem)") }
        // Writes to a peer that went away (a sidecar's pipe, a socket) are errors on that
        // channel, never a signal that ends the broker.
        signal(SIGPIPE, SIG_IGN)
        let broker = Broker(config: cfg, logger: logger)
        // SIGHUP: TLS listeners read their certificate, key, CA and CRL files again
        // (`swiftlet-ctl listeners reload-certs` does the same).
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler { [unowned broker] in
            logger.notice("SIGHUP: reloading TLS certificates")
            _ = broker.reloadCertificates()
        }
        hup.resume()
        defer { hup.cancel() }
        broker.configFile = config.map { ($0 as NSString).isAbsolutePath ? $0
            : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent($0) }
        broker.logLevels = levels
        if cfg.dashboard.enabled {
            broker.add(Dashboard(config: cfg, control: broker.control, broker: .init(
                nodeName: cfg.nodeName, version: Broker.version,
                publish: { [unowned broker] topic, payload, qos, retain in
                    broker.publish(Message(topic: topic, payload: payload, qos: QoS(rawValue: UInt8(qos)) ?? .atMostOnce,
                                           retain: retain, now: .now()))
                }, status: { [unowned broker] in try await broker.status().get().values }), logger: logger))
        }
        // Last: READY=1 to systemd (Type=notify) once everything before it has started.
        broker.add(SystemdNotifier(group: broker.eventLoopGroup, logger: logger))
        let group = ServiceGroup(configuration: .init(
            services: broker.services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("swiftlet stopped: \(error)")
            throw ExitCode(1)
        }
    }
}

