/// One managed sidecar's supervision as a state machine: events (load, spawned, exited, a
/// health failure, stop, time passing) in, actions (spawn, signal, restart scheduled, failed,
/// waiters told) out. It follows its `RestartPolicy` and `TeardownPlan`, does no I/O and reads
/// no clock: time comes in as monotonic nanoseconds, and `Supervisor` executes the actions.
/// `Waiter` is whatever a stop's caller waits on (a promise in the broker, a number in tests).
public struct SidecarSupervision<Waiter> {
    public enum State: String, Sendable { case starting, running, backoff, stopping, stopped, failed }

    public typealias Exit = ProcessExit

    public enum Action {
        /// Start the process now; answer with `spawned` or `spawnFailed`.
        case spawn
        case signal(pid: Int32, TeardownPlan.Signal)
        /// The process exited without being asked (logged); a restart or `failed` follows.
        case exitedUnexpectedly(Exit)
        /// The process exited after a stop began (logged).
        case stopped(Exit)
        /// Restart number `attempt` after `delay` seconds, at `at` (logged).
        case restartScheduled(at: UInt64, delay: Double)
        /// Too many restarts within the period: left stopped until loaded again (logged).
        case failed(restarts: Int)
        /// The sidecar hangs (no PONG): it is killed, and so restarted (logged).
        case hangs(pid: Int32)
        /// The teardown moved to SIGKILL: the grace period passed (logged).
        case graceExpired(pid: Int32)
        /// The stop is complete.
        case notify([Waiter])
    }

    public var restart: RestartPolicy
    public var teardown: TeardownPlan
    /// false: an exit (or a failed spawn) leaves it stopped instead of scheduling a restart.
    /// A hand-over sets it on the new process until it registers and on the old one once
    /// the new one serves (`SidecarHandOver`).
    public var restartsOnExit = true
    public private(set) var state = State.stopped
    public private(set) var pid: Int32?
    public private(set) var lastExit = ""
    /// When each restart of the current period was scheduled.
    public private(set) var restartTimes: [UInt64] = []
    private var attempt = 0
    private var startedAt: UInt64?
    private var restartAt: UInt64?
    /// The teardown step to take at `nextStepAt`.
    private var step = 0
    private var nextStepAt: UInt64?
    private var stopWaiters: [Waiter] = []

    public init(restart: RestartPolicy, teardown: TeardownPlan) {
        self.restart = restart
        self.teardown = teardown
    }

    public var restarts: Int { restartTimes.count }
    /// Neither running nor on its way: `load` may start it.
    public var isIdle: Bool { state == .stopped || state == .failed }

    // MARK: Events

    /// Start it with a fresh restart budget (broker start-up, `plugins load`).
    public mutating func load() -> [Action] {
        guard isIdle else { return [] }
        attempt = 0
        restartTimes = []
        restartAt = nil
        state = .starting
        return [.spawn]
    }

    public mutating func spawned(pid: Int32, now: UInt64) -> [Action] {
        guard state == .starting else { return [] }
        self.pid = pid
        startedAt = now
        state = .running
        return []
    }

    public mutating func spawnFailed(_ why: String, now: UInt64) -> [Action] {
        guard state == .starting else { return [] }
        lastExit = why
        guard restartsOnExit else {
            state = .stopped
            return []
        }
        return scheduleRestart(now: now)
    }

    /// The process `pid` was reaped.
    public mutating func exited(pid: Int32, _ exit: Exit, now: UInt64) -> [Action] {
        guard pid == self.pid else { return [] }
        self.pid = nil
        lastExit = exit.description
        nextStepAt = nil
        if state == .stopping {
            state = .stopped
            let waiters = stopWaiters
            stopWaiters = []
            return [.stopped(exit), .notify(waiters)]
        }
        guard restartsOnExit else {
            state = .stopped
            let waiters = stopWaiters
            stopWaiters = []
            return [.exitedUnexpectedly(exit), .notify(waiters)]
        }
        if let s = startedAt, now >= s, Double(now - s) / 1e9 > restart.healthyRun { attempt = 0 }
        return [.exitedUnexpectedly(exit)] + scheduleRestart(now: now)
    }

    /// No PONG within the health timeout: kill it so that the restart policy brings it back.
    public mutating func healthFailed() -> [Action] {
        guard state == .running, let pid else { return [] }
        return [.hangs(pid: pid), .signal(pid: pid, .kill)]
    }

    /// Stop it (`plugins unload`, broker shutdown): the teardown plan, then `waiter` is told.
    public mutating func stop(waiter: Waiter, now: UInt64) -> [Action] {
        restartAt = nil
        guard let pid else {
            state = .stopped
            return [.notify([waiter])]
        }
        stopWaiters.append(waiter)
        guard state != .stopping else { return [] }
        state = .stopping
        step = 0
        return takeStep(pid: pid, now: now)
    }

    /// Time passed: a restart or the next teardown step may be due.
    public mutating func tick(now: UInt64) -> [Action] {
        if state == .backoff, let at = restartAt, now >= at {
            restartAt = nil
            state = .starting
            return [.spawn]
        }
        if state == .stopping, let at = nextStepAt, now >= at, let pid {
            return [.graceExpired(pid: pid)] + takeStep(pid: pid, now: now)
        }
        return []
    }

    /// The earliest time `tick` has something to do.
    public var nextDeadline: UInt64? {
        switch state {
        case .backoff: return restartAt
        case .stopping: return nextStepAt
        default: return nil
        }
    }

    // MARK: Policy

    private mutating func scheduleRestart(now: UInt64) -> [Action] {
        let period = UInt64(restart.period * 1e9)
        restartTimes.removeAll { now >= $0 && now - $0 >= period }
        if restartTimes.count >= restart.maxRestarts {
            state = .failed
            return [.failed(restarts: restartTimes.count)]
        }
        let delay = restart.backoff(attempt: attempt)
        attempt += 1
        restartTimes.append(now)
        state = .backoff
        let at = now &+ UInt64(delay * 1e9)
        restartAt = at
        return [.restartScheduled(at: at, delay: delay)]
    }

    private mutating func takeStep(pid: Int32, now: UInt64) -> [Action] {
        guard step < teardown.steps.count else { nextStepAt = nil; return [] }
        let s = teardown.steps[step]
        step += 1
        nextStepAt = step < teardown.steps.count ? now &+ UInt64(max(0, s.wait) * 1e9) : nil
        return [.signal(pid: pid, s.signal)]
    }
}

/// How a process ended (waitpid's status).
public enum ProcessExit: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    public var description: String {
        switch self {
        case .exited(let c): return "exit \(c)"
        case .signalled(let s): return "signal \(s)"
        }
    }
}
