import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Starts, watches, restarts and stops managed sidecars. All state lives on one event loop;
/// process exits and output arrive on other threads and hop to it.
public final class Supervisor: @unchecked Sendable {
    public enum State: String, Sendable { case starting, running, backoff, stopping, stopped, failed }

    final class Managed {
        var spec: PluginSpec
        var state = State.stopped
        var process: Process?
        var startedAt: Date?
        var restartTimes: [Date] = []
        var attempt = 0
        var timer: Scheduled<Void>?
        var lastExit = ""
        var stopWaiters: [EventLoopPromise<Void>] = []
        init(spec: PluginSpec) { self.spec = spec }
    }

    public struct Status: Sendable {
        public var name: String
        public var state: String
        public var pid: Int32?
        public var enabled: Bool
        public var restarts: Int
        public var connected: Bool
        public var lastExit: String
        public var file: String
    }

    unowned let broker: Broker
    let loop: EventLoop
    let logger: Logger
    private var managed: [String: Managed] = [:]

    init(broker: Broker) {
        self.broker = broker
        self.loop = broker.eventLoopGroup.next()
        var l = broker.logger
        l[metadataKey: "component"] = "supervisor"
        self.logger = l
    }

    var pluginsDir: String? { broker.config.sidecars.pluginsDir }

    func start() {
        registerPluginsCommand()
        broker.sidecars.onDisconnect = { [weak self] name, reason in
            self?.loop.execute { self?.connectionLost(name, reason: reason) }
        }
        guard let dir = pluginsDir else { return }
        loop.execute { [self] in
            for (name, file) in PluginSpec.scan(dir: dir) {
                do {
                    let spec = try PluginSpec.load(name: name, file: file)
                    let m = Managed(spec: spec)
                    managed[name] = m
                    if spec.enabled { spawn(m) }
                } catch {
                    logger.error("plugin declaration refused", metadata: ["sidecar.name": "\(name)", "error": "\(error)"])
                }
            }
        }
    }

    func stop() async {
        let f: EventLoopFuture<Void> = loop.flatSubmit { [self] in
            let all = managed.values.map { teardown($0) }
            return EventLoopFuture.andAllComplete(all, on: loop)
        }
        try? await f.get()
    }

    // MARK: ctl: plugins list | load | unload | reload

    public func list() -> EventLoopFuture<[Status]> {
        loop.submit { [self] in
            var names = Set(managed.keys)
            if let dir = pluginsDir { names.formUnion(PluginSpec.scan(dir: dir).map(\.name)) }
            return names.sorted().map { name in
                let m = managed[name]
                return Status(name: name, state: m?.state.rawValue ?? "stopped", pid: m?.process?.processIdentifier,
                              enabled: m?.spec.enabled ?? false, restarts: m?.restartTimes.count ?? 0,
                              connected: broker.sidecars.connection(named: name) != nil, lastExit: m?.lastExit ?? "",
                              file: m?.spec.file ?? pluginsDir.map { ($0 as NSString).appendingPathComponent("\(name).toml") } ?? "")
            }
        }
    }

    /// Reads `<plugins_dir>/<name>.toml` again and starts the sidecar (enabled or not).
    public func load(_ name: String) -> EventLoopFuture<String> {
        loop.flatSubmit { [self] in
            guard let dir = pluginsDir else {
                return loop.makeFailedFuture(SupervisorError("no [sidecars] plugins_dir is configured"))
            }
            guard let file = PluginSpec.scan(dir: dir).first(where: { $0.name == name })?.file else {
                return loop.makeFailedFuture(SupervisorError("no plugin \(name) in \(dir)"))
            }
            let spec: PluginSpec
            do { spec = try PluginSpec.load(name: name, file: file) } catch {
                return loop.makeFailedFuture(SupervisorError("\(error)"))
            }
            if let m = managed[name], m.state != .stopped, m.state != .failed {
                return loop.makeSucceededFuture("\(name) is already \(m.state.rawValue)")
            }
            let m = managed[name] ?? Managed(spec: spec)
            m.spec = spec
            m.attempt = 0
            m.restartTimes = []
            managed[name] = m
            spawn(m)
            return loop.makeSucceededFuture(m.state == .failed ? "\(name) failed to start: \(m.lastExit)" : "\(name) started")
        }
    }

    public func unload(_ name: String) -> EventLoopFuture<String> {
        loop.flatSubmit { [self] in
            guard let m = managed[name] else { return loop.makeFailedFuture(SupervisorError("plugin \(name) is not loaded")) }
            return teardown(m).map { [self] in
                broker.sidecars.removeProvider(named: name)
                return "\(name) stopped"
            }
        }
    }

    public func reload(_ name: String) -> EventLoopFuture<String> {
        unload(name).recover { _ in "" }.flatMap { [self] _ in load(name) }.map { _ in "\(name) reloaded" }
    }

    // MARK: Processes

    private func spawn(_ m: Managed) {
        loop.preconditionInEventLoop()
        m.timer?.cancel()
        let spec = m.spec
        let p = Process()
        let cwd = FileManager.default.currentDirectoryPath
        let path = spec.command.hasPrefix("/") ? spec.command : (cwd as NSString).appendingPathComponent(spec.command)
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = spec.args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in spec.env { env[k] = v }
        env["SWIFTLET_SOCKET"] = absolute(broker.config.sidecarSocketPath, cwd: cwd)
        env["SWIFTLET_CTL_SOCKET"] = absolute(broker.config.ctlSocketPath, cwd: cwd)
        env["SWIFTLET_SIDECAR_NAME"] = spec.name
        env["SWIFTLET_PLUGIN_CONFIG"] = absolute(spec.file, cwd: cwd)
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle.nullDevice
        p.terminationHandler = { [weak self, weak m] proc in
            let status = proc.terminationStatus
            let reason = proc.terminationReason == .uncaughtSignal ? "signal \(status)" : "exit \(status)"
            guard let self, let m else { return }
            self.loop.execute { self.exited(m, proc, reason: reason) }
        }
        do {
            try p.run()
        } catch {
            m.lastExit = "cannot start \(path): \(error)"
            logger.error("sidecar could not be started", metadata: ["sidecar.name": "\(spec.name)", "error": "\(m.lastExit)"])
            try? pipe.fileHandleForWriting.close()
            try? pipe.fileHandleForReading.close()
            scheduleRestart(m)
            return
        }
        try? pipe.fileHandleForWriting.close()
        m.process = p
        m.state = .running
        m.startedAt = Date()
        logger.info("sidecar started", metadata: ["sidecar.name": "\(spec.name)", "sidecar.pid": "\(p.processIdentifier)"])
        Self.forwardOutput(pipe.fileHandleForReading, name: spec.name, logger: logger)
    }

    private func absolute(_ path: String, cwd: String) -> String {
        path.hasPrefix("/") ? path : (cwd as NSString).appendingPathComponent(path)
    }

    /// Every line the sidecar writes goes to the broker log, tagged with its name.
    private static func forwardOutput(_ h: FileHandle, name: String, logger: Logger) {
        let t = Thread {
            var pending = Data()
            while true {
                let d = h.availableData
                if d.isEmpty { break }
                pending.append(d)
                while let nl = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...nl)
                    logger.info("\(line)", metadata: ["sidecar.name": "\(name)"])
                }
                if pending.count > 65_536 {
                    logger.info("\(String(decoding: pending, as: UTF8.self))", metadata: ["sidecar.name": "\(name)"])
                    pending.removeAll()
                }
            }
            if !pending.isEmpty { logger.info("\(String(decoding: pending, as: UTF8.self))", metadata: ["sidecar.name": "\(name)"]) }
            try? h.close()
        }
        t.name = "sidecar-\(name)-output"
        t.start()
    }

    private func exited(_ m: Managed, _ proc: Process, reason: String) {
        guard m.process === proc else { return }
        m.process = nil
        m.lastExit = reason
        let waiters = m.stopWaiters
        m.stopWaiters = []
        m.timer?.cancel()
        if m.state == .stopping {
            m.state = .stopped
            logger.info("sidecar stopped", metadata: ["sidecar.name": "\(m.spec.name)", "sidecar.exit": "\(reason)"])
            waiters.forEach { $0.succeed(()) }
            return
        }
        logger.warning("sidecar exited unexpectedly", metadata: ["sidecar.name": "\(m.spec.name)", "sidecar.exit": "\(reason)"])
        if let s = m.startedAt, Date().timeIntervalSince(s) > max(10, m.spec.restart.maxBackoff) { m.attempt = 0 }
        scheduleRestart(m)
    }

    private func scheduleRestart(_ m: Managed) {
        let now = Date()
        m.restartTimes = m.restartTimes.filter { now.timeIntervalSince($0) < m.spec.restart.period }
        if m.restartTimes.count >= m.spec.restart.maxRestarts {
            m.state = .failed
            logger.error("sidecar restarted too often; left stopped", metadata: [
                "sidecar.name": "\(m.spec.name)", "sidecar.restarts": "\(m.restartTimes.count)",
                "sidecar.period": "\(m.spec.restart.period)"])
            return
        }
        let delay = m.spec.restart.backoff(attempt: m.attempt)
        m.attempt += 1
        m.restartTimes.append(now)
        m.state = .backoff
        logger.info("sidecar restart scheduled", metadata: ["sidecar.name": "\(m.spec.name)", "sidecar.backoff": "\(delay)"])
        m.timer = loop.scheduleTask(in: .milliseconds(Int64(delay * 1000))) { [self] in
            if m.state == .backoff { spawn(m) }
        }
    }

    /// SIGTERM, then SIGKILL after the grace period; completes when the process is gone.
    private func teardown(_ m: Managed) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        m.timer?.cancel()
        guard let p = m.process, p.isRunning else {
            m.state = .stopped
            return loop.makeSucceededVoidFuture()
        }
        m.state = .stopping
        let promise = loop.makePromise(of: Void.self)
        m.stopWaiters.append(promise)
        let pid = p.processIdentifier
        kill(pid, SIGTERM)
        m.timer = loop.scheduleTask(in: .milliseconds(Int64(m.spec.restart.shutdownGrace * 1000))) { [self] in
            if m.process === p {
                logger.warning("sidecar did not stop within the grace period; killing", metadata: ["sidecar.name": "\(m.spec.name)"])
                kill(pid, SIGKILL)
            }
        }
        return promise.futureResult
    }

    /// A managed sidecar that stopped answering health pings is killed (and so restarted).
    private func connectionLost(_ name: String, reason: SidecarCloseReason) {
        guard let m = managed[name], m.state == .running, let p = m.process else { return }
        if reason == .healthTimeout {
            logger.warning("sidecar hangs; killing it for a restart", metadata: ["sidecar.name": "\(name)", "reason": "\(reason)"])
            kill(p.processIdentifier, SIGKILL)
        }
    }
}

struct SupervisorError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
