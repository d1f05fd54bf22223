import SidecarLinkKit
import SwiftletConfig
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Starts, watches, restarts and stops managed sidecars: the executor of one
/// `SidecarSupervision` per sidecar. All state lives on one event loop; processes are spawned
/// with posix_spawn, their output read on that loop and their exits reaped there (at the end of
/// their output and every `reapInterval` while any runs); no thread per sidecar.
public final class Supervisor: BrokerPart, @unchecked Sendable {
    public let name = "supervisor"
    typealias Machine = SidecarSupervision<EventLoopPromise<Void>>
    typealias State = Machine.State

    final class Managed {
        var spec: PluginSpec
        var machine: Machine
        init(spec: PluginSpec) {
            self.spec = spec
            machine = Machine(restart: spec.restart, teardown: spec.teardown)
        }
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

    /// How often exits are looked for while a sidecar runs (its output's end is noticed at once).
    static let reapInterval: UInt64 = 100_000_000

    let loop: EventLoop
    let logger: Logger
    /// The socket managed sidecars connect to; it tells the supervisor when one goes away.
    let hub: SidecarHub
    /// Where `plugins` is registered.
    let control: ControlRegistry
    let pluginsDir: String?
    /// Passed to each sidecar (SWIFTLET_SOCKET, SWIFTLET_CTL_SOCKET).
    let sidecarSocketPath: String
    let ctlSocketPath: String
    private var managed: [String: Managed] = [:]
    private var timer: Scheduled<Void>?
    private var timerDeadline = UInt64.max

    init(config: BrokerConfig, loop: EventLoop, logger: Logger, hub: SidecarHub, control: ControlRegistry) {
        self.loop = loop
        var l = logger
        l[metadataKey: "component"] = "supervisor"
        self.logger = l
        self.hub = hub
        self.control = control
        self.pluginsDir = config.sidecars.pluginsDir
        self.sidecarSocketPath = config.sidecarSocketPath
        self.ctlSocketPath = config.ctlSocketPath
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    public func start() {
        registerPluginsCommand()
        hub.onDisconnect = { [weak self] name, reason in
            self?.loop.execute { self?.connectionLost(name, reason: reason) }
        }
        guard let dir = pluginsDir else { return }
        loop.execute { [self] in
            for (name, file) in PluginSpec.scan(dir: dir) {
                do {
                    let spec = try PluginSpec.load(name: name, file: file)
                    let m = Managed(spec: spec)
                    managed[name] = m
                    if spec.enabled { run(m, m.machine.load()) }
                } catch {
                    logger.error("plugin declaration refused", metadata: ["sidecar.name": "\(name)", "error": "\(error)"])
                }
            }
        }
    }

    public func stop() async {
        let f: EventLoopFuture<Void> = loop.flatSubmit { [self] in
            let all = managed.values.map { stop($0) }
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
                return Status(name: name, state: m?.machine.state.rawValue ?? "stopped", pid: m?.machine.pid,
                              enabled: m?.spec.enabled ?? false, restarts: m?.machine.restarts ?? 0,
                              connected: hub.connection(named: name) != nil, lastExit: m?.machine.lastExit ?? "",
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
            if let m = managed[name], !m.machine.isIdle {
                return loop.makeSucceededFuture("\(name) is already \(m.machine.state.rawValue)")
            }
            let m = managed[name] ?? Managed(spec: spec)
            m.spec = spec
            m.machine.restart = spec.restart
            m.machine.teardown = spec.teardown
            managed[name] = m
            run(m, m.machine.load())
            return loop.makeSucceededFuture(m.machine.state == .failed ? "\(name) failed to start: \(m.machine.lastExit)"
                                                                       : "\(name) started")
        }
    }

    public func unload(_ name: String) -> EventLoopFuture<String> {
        loop.flatSubmit { [self] in
            guard let m = managed[name] else { return loop.makeFailedFuture(SupervisorError("plugin \(name) is not loaded")) }
            return stop(m).map { [self] in
                hub.removeProvider(named: name)
                return "\(name) stopped"
            }
        }
    }

    public func reload(_ name: String) -> EventLoopFuture<String> {
        unload(name).recover { _ in "" }.flatMap { [self] _ in load(name) }.map { _ in "\(name) reloaded" }
    }

    // MARK: Executing the machines' actions

    private func stop(_ m: Managed) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: Void.self)
        run(m, m.machine.stop(waiter: promise, now: Self.now()))
        return promise.futureResult
    }

    private func run(_ m: Managed, _ actions: [Machine.Action]) {
        loop.preconditionInEventLoop()
        for a in actions { execute(m, a) }
        armTimer()
    }

    private func execute(_ m: Managed, _ action: Machine.Action) {
        let name = m.spec.name
        switch action {
        case .spawn:
            spawn(m)
        case .signal(let pid, let signal):
            kill(pid, signal.number)
        case .exitedUnexpectedly(let exit):
            logger.warning("sidecar exited unexpectedly", metadata: ["sidecar.name": "\(name)", "sidecar.exit": "\(exit)"])
        case .stopped(let exit):
            logger.info("sidecar stopped", metadata: ["sidecar.name": "\(name)", "sidecar.exit": "\(exit)"])
        case .restartScheduled(_, let delay):
            logger.info("sidecar restart scheduled", metadata: ["sidecar.name": "\(name)", "sidecar.backoff": "\(delay)"])
        case .failed(let restarts):
            logger.error("sidecar restarted too often; left stopped", metadata: [
                "sidecar.name": "\(name)", "sidecar.restarts": "\(restarts)", "sidecar.period": "\(m.spec.restart.period)"])
        case .hangs:
            logger.warning("sidecar hangs; killing it for a restart", metadata: [
                "sidecar.name": "\(name)", "reason": "\(SidecarCloseReason.healthTimeout)"])
        case .graceExpired:
            logger.warning("sidecar did not stop within the grace period; killing", metadata: ["sidecar.name": "\(name)"])
        case .notify(let waiters):
            waiters.forEach { $0.succeed(()) }
        }
    }

    private func spawn(_ m: Managed) {
        let spec = m.spec
        let cwd = FileManager.default.currentDirectoryPath
        let path = absolute(spec.command, cwd: cwd)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in spec.env { env[k] = v }
        env["SWIFTLET_SOCKET"] = absolute(sidecarSocketPath, cwd: cwd)
        env["SWIFTLET_CTL_SOCKET"] = absolute(ctlSocketPath, cwd: cwd)
        env["SWIFTLET_SIDECAR_NAME"] = spec.name
        env["SWIFTLET_PLUGIN_CONFIG"] = absolute(spec.file, cwd: cwd)
        let child: (pid: Int32, output: CInt)
        do {
            child = try ChildProcess.spawn(path: path, args: spec.args, environment: env)
        } catch {
            let why = "cannot start \(path): \(error)"
            logger.error("sidecar could not be started", metadata: ["sidecar.name": "\(spec.name)", "error": "\(why)"])
            return run(m, m.machine.spawnFailed(why, now: Self.now()))
        }
        logger.info("sidecar started", metadata: ["sidecar.name": "\(spec.name)", "sidecar.pid": "\(child.pid)"])
        run(m, m.machine.spawned(pid: child.pid, now: Self.now()))
        // The end of its output usually means it exited: look at once.
        ChildProcess.forwardOutput(child.output, on: loop, name: spec.name, logger: logger) { [weak self] in
            self?.loop.execute { self?.reapAll() }
        }
    }

    private func absolute(_ path: String, cwd: String) -> String {
        path.hasPrefix("/") ? path : (cwd as NSString).appendingPathComponent(path)
    }

    /// Exits of every running process, then whatever time made due.
    private func reapAll() {
        let now = Self.now()
        for m in managed.values {
            if let pid = m.machine.pid, let exit = ChildProcess.reap(pid) {
                for a in m.machine.exited(pid: pid, exit, now: now) { execute(m, a) }
            }
            for a in m.machine.tick(now: now) { execute(m, a) }
        }
        armTimer()
    }

    /// One timer: the machines' earliest deadline, and the next exit check while any runs.
    private func armTimer() {
        var d = managed.values.compactMap { $0.machine.nextDeadline }.min()
        if managed.values.contains(where: { $0.machine.pid != nil }) {
            d = min(d ?? .max, Self.now() &+ Self.reapInterval)
        }
        guard let d else { return }
        if timer != nil, d >= timerDeadline { return }
        timer?.cancel()
        timerDeadline = d
        timer = loop.scheduleTask(deadline: .uptimeNanoseconds(d)) { [self] in
            timer = nil
            timerDeadline = .max
            reapAll()
        }
    }

    /// A managed sidecar that stopped answering health pings is killed (and so restarted).
    private func connectionLost(_ name: String, reason: SidecarCloseReason) {
        guard let m = managed[name], reason == .healthTimeout else { return }
        run(m, m.machine.healthFailed())
    }
}

struct SupervisorError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
