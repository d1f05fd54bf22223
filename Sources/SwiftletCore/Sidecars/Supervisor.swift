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

    /// A `plugins reload` in progress: the old process, the new one, and who waits for the answer.
    final class HandOverRun {
        var machine: SidecarHandOver
        let old: Managed
        let next: Managed
        let promise: EventLoopPromise<String>
        /// The old connection, once the new one registered (its outstanding requests drain).
        var oldConnection: SidecarConnection?
        init(machine: SidecarHandOver, old: Managed, next: Managed, promise: EventLoopPromise<String>) {
            self.machine = machine
            self.old = old
            self.next = next
            self.promise = promise
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
    /// Reloads in progress by name.
    private var handOvers: [String: HandOverRun] = [:]
    /// New processes of failed hand-overs, until their teardown is over.
    private var abandoned: [Managed] = []
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
        hub.onHandOver = { [weak self] name, old in
            self?.loop.execute { self?.successorRegistered(name, old: old) }
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
            for h in handOvers.values { h.promise.fail(SupervisorError("\(h.machine.name) not reloaded: the broker is stopping")) }
            handOvers = [:]
            let all = everyone.map { stop($0) }
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
            do {
                spec = try PluginSpec.load(name: name, file: file)
                _ = try spec.isolation.resolve()
                try spec.isolation.checkLimits()
            } catch {
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

    /// A hand-over when the sidecar runs and is connected (`SidecarHandOver`); otherwise a
    /// plain stop and start.
    public func reload(_ name: String) -> EventLoopFuture<String> {
        loop.flatSubmit { [self] in
            guard let m = managed[name], m.machine.state == .running, m.machine.pid != nil,
                  hub.connection(named: name) != nil else {
                return unload(name).recover { _ in "" }.flatMap { [self] _ in load(name) }
                    .map { "\(name) reloaded (it was not serving, so it was started: \($0))" }
            }
            guard handOvers[name] == nil else {
                return loop.makeFailedFuture(SupervisorError("a reload of \(name) is already in progress"))
            }
            let spec: PluginSpec
            do { spec = try PluginSpec.load(name: name, file: m.spec.file) } catch {
                return loop.makeFailedFuture(SupervisorError("\(name) not reloaded (the running one keeps serving): \(error)"))
            }
            let next = Managed(spec: spec)
            next.machine.restartsOnExit = false
            let c = hub.config
            let h = HandOverRun(
                machine: SidecarHandOver(name: name, now: Self.now(),
                                         registerTimeout: UInt64(max(10_000_000_000, 2 * c.handshakeTimeout.nanoseconds)),
                                         drainTimeout: UInt64(c.requestTimeout.nanoseconds) &+ 1_000_000_000),
                old: m, next: next, promise: loop.makePromise())
            handOvers[name] = h
            logger.info("sidecar hand-over started", metadata: ["sidecar.name": "\(name)", "sidecar.pid": "\(m.machine.pid ?? 0)"])
            run(next, next.machine.load())
            if next.machine.pid == nil { runHandOver(h, h.machine.newEnded("could not be started (\(next.machine.lastExit))")) }
            return h.promise.futureResult
        }
    }

    /// `reload config` reads every plugin file before it applies anything: the first that
    /// does not load refuses the whole reload.
    public func checkDeclarations() throws {
        guard let dir = pluginsDir else { return }
        for (name, file) in PluginSpec.scan(dir: dir) {
            do { _ = try PluginSpec.load(name: name, file: file) } catch {
                throw PluginFileError(description: "plugin \(name) (\(file)): \(error)")
            }
        }
    }

    struct PluginFileError: Error, CustomStringConvertible { let description: String }

    /// `reload config`: each plugin file read again. A running sidecar whose declaration
    /// changed is reloaded (a hand-over); a new or stopped one with `enabled = true` is
    /// started. Returns what was done, one line per plugin; a file with an error is named and
    /// changes nothing.
    public func applyDeclarations() -> EventLoopFuture<[String]> {
        loop.flatSubmit { [self] in
            guard let dir = pluginsDir else { return loop.makeSucceededFuture([]) }
            var work: [EventLoopFuture<String>] = []
            for (name, file) in PluginSpec.scan(dir: dir) {
                let spec: PluginSpec
                do { spec = try PluginSpec.load(name: name, file: file) } catch {
                    work.append(loop.makeSucceededFuture("plugin \(name): not applied: \(error)"))
                    continue
                }
                if let m = managed[name], !m.machine.isIdle {
                    // `enabled` only matters at start: a running sidecar is not reloaded for it.
                    var running = m.spec
                    running.enabled = spec.enabled
                    guard running != spec else { continue }
                    work.append(reload(name).map { "plugin \($0)" }.recover { "plugin \(name): \($0)" })
                } else if spec.enabled {
                    work.append(load(name).map { "plugin \($0)" }.recover { "plugin \(name): \($0)" })
                }
            }
            return EventLoopFuture.whenAllSucceed(work, on: loop)
        }
    }

    // MARK: Hand-over

    /// Every machine with a process: the managed ones and both sides of each hand-over.
    private var everyone: [Managed] {
        var all = Array(managed.values) + abandoned
        for h in handOvers.values {
            if !all.contains(where: { $0 === h.old }) { all.append(h.old) }
            if !all.contains(where: { $0 === h.next }) { all.append(h.next) }
        }
        return all
    }

    /// The new process registered (the hub already routes new requests to it).
    private func successorRegistered(_ name: String, old: SidecarConnection?) {
        guard let h = handOvers[name], h.machine.phase == .starting else { return }
        h.next.machine.restartsOnExit = true
        h.old.machine.restartsOnExit = false
        managed[name] = h.next
        h.oldConnection = old
        logger.info("sidecar hand-over: the new process serves; draining the old one", metadata: [
            "sidecar.name": "\(name)", "sidecar.pid": "\(h.next.machine.pid ?? 0)"])
        runHandOver(h, h.machine.newRegistered(now: Self.now()))
        pollDrain(h)
    }

    /// Asks the old connection how many requests it still waits for, until none.
    private func pollDrain(_ h: HandOverRun) {
        guard h.machine.phase == .draining else { return }
        let count: EventLoopFuture<Int> = h.oldConnection.map { c in c.eventLoop.submit { c.outstanding } }
            ?? loop.makeSucceededFuture(0)
        count.hop(to: loop).whenComplete { [self] result in
            runHandOver(h, h.machine.oldOutstanding((try? result.get()) ?? 0))
            if h.machine.phase == .draining {
                loop.scheduleTask(in: .milliseconds(10)) { [self] in pollDrain(h) }
            }
        }
    }

    private func runHandOver(_ h: HandOverRun, _ actions: [SidecarHandOver.Action]) {
        loop.preconditionInEventLoop()
        let name = h.machine.name
        for a in actions {
            switch a {
            case .stopOld:
                stop(h.old).whenComplete { [self] _ in runHandOver(h, h.machine.oldStopped()) }
            case .stopNew:
                let next = h.next
                abandoned.append(next)
                stop(next).whenComplete { [self] _ in abandoned.removeAll { $0 === next } }
            case .finished(let text):
                handOvers[name] = nil
                logger.info("sidecar hand-over complete", metadata: ["sidecar.name": "\(name)", "sidecar.abandoned": "\(h.machine.abandoned)"])
                h.promise.succeed(text)
            case .failed(let text):
                handOvers[name] = nil
                hub.cancelSuccessor(name)
                if managed[name] === h.next { managed[name] = h.old }
                logger.error("sidecar hand-over failed", metadata: ["sidecar.name": "\(name)", "error": "\(text)"])
                h.promise.fail(SupervisorError(text))
            }
        }
        armTimer()
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
        let iso = spec.isolation
        var env: [String: String]
        if iso.wantsCleanEnvironment {
            let inherited = ProcessInfo.processInfo.environment
            env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": inherited["LANG"] ?? "C.UTF-8"]
            for (k, v) in inherited where k.hasPrefix("SWIFTLET_") { env[k] = v }
        } else {
            env = ProcessInfo.processInfo.environment
        }
        Heap.restoreThreadCacheSetting(&env)
        let ids: SidecarIsolation.Resolved
        do {
            ids = try iso.resolve()
            try iso.checkLimits()
        } catch {
            logger.error("sidecar could not be started", metadata: ["sidecar.name": "\(spec.name)", "error": "\(error)"])
            return run(m, m.machine.spawnFailed("\(error)", now: Self.now()))
        }
        if let user = iso.user, iso.wantsCleanEnvironment {
            env["USER"] = user
            env["HOME"] = ids.home ?? "/"
        }
        env["NOTIFY_SOCKET"] = nil
        for (k, v) in spec.env { env[k] = v }
        env["SWIFTLET_SOCKET"] = absolute(sidecarSocketPath, cwd: cwd)
        env["SWIFTLET_CTL_SOCKET"] = absolute(ctlSocketPath, cwd: cwd)
        env["SWIFTLET_SIDECAR_NAME"] = spec.name
        env["SWIFTLET_PLUGIN_CONFIG"] = absolute(spec.file, cwd: cwd)
        let child: (pid: Int32, output: CInt)
        do {
            child = iso.isEmpty ? try ChildProcess.spawn(path: path, args: spec.args, environment: env)
                : try ChildProcess.spawnIsolated(path: path, args: spec.args, environment: env, isolation: iso, ids: ids)
        } catch {
            let why = "cannot start \(path): \(error)"
            logger.error("sidecar could not be started", metadata: ["sidecar.name": "\(spec.name)", "error": "\(why)"])
            return run(m, m.machine.spawnFailed(why, now: Self.now()))
        }
        logger.info("sidecar started", metadata: ["sidecar.name": "\(spec.name)", "sidecar.pid": "\(child.pid)"])
        if let h = handOvers[spec.name], h.next === m { hub.expectSuccessor(spec.name, pid: child.pid) }
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
        for m in everyone {
            if let pid = m.machine.pid, let exit = ChildProcess.reap(pid) {
                for a in m.machine.exited(pid: pid, exit, now: now) { execute(m, a) }
                if let h = handOvers[m.spec.name], h.next === m { runHandOver(h, h.machine.newEnded("ended (\(exit))")) }
            }
            for a in m.machine.tick(now: now) { execute(m, a) }
        }
        for h in Array(handOvers.values) { runHandOver(h, h.machine.tick(now: now)) }
        armTimer()
    }

    /// One timer: the machines' earliest deadline, and the next exit check while any runs.
    private func armTimer() {
        let all = everyone
        var d = (all.compactMap { $0.machine.nextDeadline } + handOvers.values.compactMap { $0.machine.nextDeadline }).min()
        if all.contains(where: { $0.machine.pid != nil }) {
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
