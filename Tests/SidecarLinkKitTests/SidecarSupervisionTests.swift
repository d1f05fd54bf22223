import XCTest
@testable import SidecarLinkKit

/// Supervision of one managed sidecar through `SidecarSupervision` alone: events and a manual
/// clock in, actions out (docs/sidecars.md, "Supervision"). Waiters are numbers.
final class SidecarSupervisionTests: XCTestCase {
    typealias Machine = SidecarSupervision<Int>

    private let t0: UInt64 = 1_000_000_000_000
    private let second: UInt64 = 1_000_000_000

    private func policy(initial: Double = 0.5, max: Double = 2, restarts: Int = 10, period: Double = 60) -> RestartPolicy {
        var p = RestartPolicy()
        p.initialBackoff = initial
        p.maxBackoff = max
        p.maxRestarts = restarts
        p.period = period
        return p
    }

    private func machine(_ p: RestartPolicy? = nil, grace: Double = 5) -> Machine {
        Machine(restart: p ?? policy(), teardown: TeardownPlan(grace: grace))
    }

    /// The actions as text, for exact comparisons.
    private func text(_ actions: [Machine.Action]) -> [String] {
        actions.map {
            switch $0 {
            case .spawn: return "spawn"
            case .signal(let pid, let s): return "\(s) \(pid)"
            case .exitedUnexpectedly(let e): return "unexpected \(e)"
            case .stopped(let e): return "stopped \(e)"
            case .restartScheduled(let at, let delay): return "restart in \(delay) at +\(Double(at - t0) / 1e9)"
            case .failed(let n): return "failed after \(n)"
            case .hangs(let pid): return "hangs \(pid)"
            case .graceExpired(let pid): return "grace expired \(pid)"
            case .notify(let w): return "notify \(w)"
            }
        }
    }

    /// A machine running process `pid` since `t0`.
    private func running(_ m: inout Machine, pid: Int32 = 7, at: UInt64? = nil) {
        if m.isIdle { XCTAssertEqual(text(m.load()), ["spawn"]) }
        XCTAssertEqual(m.state, .starting)
        XCTAssertTrue(m.spawned(pid: pid, now: at ?? t0).isEmpty)
        XCTAssertEqual(m.state, .running)
        XCTAssertEqual(m.pid, pid)
    }

    func testLoadSpawnsOnceUntilIdleAgain() {
        var m = machine()
        XCTAssertEqual(m.state, .stopped)
        XCTAssertEqual(text(m.load()), ["spawn"])
        XCTAssertTrue(m.load().isEmpty, "already starting")
        running(&m)
        XCTAssertTrue(m.load().isEmpty, "already running")
        XCTAssertNil(m.nextDeadline)
    }

    func testACrashIsRestartedWithACappedDoublingBackoff() {
        var m = machine(policy(initial: 0.5, max: 2))
        running(&m)
        var now = t0
        var delays: [String] = []
        for pid in Int32(7)..<12 {
            now += second
            let a = text(m.exited(pid: pid, .signalled(9), now: now))
            XCTAssertEqual(a.first, "unexpected signal 9")
            delays.append(a.last!)
            XCTAssertEqual(m.state, .backoff)
            let due = m.nextDeadline!
            XCTAssertTrue(m.tick(now: due - 1).isEmpty)
            XCTAssertEqual(text(m.tick(now: due)), ["spawn"])
            now = due
            XCTAssertTrue(m.spawned(pid: pid + 1, now: now).isEmpty)
        }
        XCTAssertEqual(delays.map { $0.split(separator: " ")[2] }, ["0.5", "1.0", "2.0", "2.0", "2.0"])
        XCTAssertEqual(m.lastExit, "signal 9")
        XCTAssertEqual(m.restarts, 5)
    }

    func testARunLongerThanTheHealthyRunStartsTheBackoffAgain() {
        var m = machine(policy(initial: 0.5, max: 2))
        running(&m)
        _ = m.exited(pid: 7, .exited(1), now: t0 + second)
        _ = m.tick(now: m.nextDeadline!)
        _ = m.spawned(pid: 8, now: t0 + 2 * second)
        XCTAssertEqual(text(m.exited(pid: 8, .exited(1), now: t0 + 3 * second)).last, "restart in 1.0 at +4.0")
        _ = m.tick(now: m.nextDeadline!)
        _ = m.spawned(pid: 9, now: t0 + 4 * second)
        // Up for longer than max(10 s, max_backoff): the next crash waits only initial_backoff.
        XCTAssertEqual(text(m.exited(pid: 9, .exited(1), now: t0 + 15 * second)).last, "restart in 0.5 at +15.5")
    }

    func testTooManyRestartsWithinThePeriodLeaveItFailedUntilLoaded() {
        var m = machine(policy(initial: 0.05, max: 0.05, restarts: 2, period: 60))
        running(&m)
        var now = t0
        for pid in Int32(7)..<9 {
            now += second
            XCTAssertEqual(text(m.exited(pid: pid, .signalled(9), now: now)).count, 2)
            XCTAssertEqual(text(m.tick(now: m.nextDeadline!)), ["spawn"])
            _ = m.spawned(pid: pid + 1, now: now)
        }
        now += second
        XCTAssertEqual(text(m.exited(pid: 9, .signalled(9), now: now)), ["unexpected signal 9", "failed after 2"])
        XCTAssertEqual(m.state, .failed)
        XCTAssertNil(m.nextDeadline)
        XCTAssertTrue(m.tick(now: now + 3600 * second).isEmpty, "never started again by itself")
        XCTAssertEqual(text(m.load()), ["spawn"], "plugins load starts it with a fresh budget")
        XCTAssertEqual(m.restarts, 0)
    }

    func testRestartsOlderThanThePeriodNoLongerCount() {
        var m = machine(policy(initial: 0.05, max: 0.05, restarts: 1, period: 10))
        running(&m)
        _ = m.exited(pid: 7, .exited(1), now: t0 + second)
        _ = m.tick(now: m.nextDeadline!)
        _ = m.spawned(pid: 8, now: t0 + 2 * second)
        let a = text(m.exited(pid: 8, .exited(1), now: t0 + 12 * second))
        XCTAssertEqual(a.count, 2)
        XCTAssertTrue(a[1].hasPrefix("restart in"), "\(a)")
        XCTAssertEqual(m.restarts, 1)
    }

    func testACommandThatCannotStartIsRetriedWithBackoff() {
        var m = machine()
        _ = m.load()
        XCTAssertEqual(text(m.spawnFailed("cannot start /x: No such file or directory", now: t0)), ["restart in 0.5 at +0.5"])
        XCTAssertEqual(m.lastExit, "cannot start /x: No such file or directory")
        XCTAssertEqual(text(m.tick(now: t0 + second / 2)), ["spawn"])
    }

    func testStopIsSigtermThenSigkillAfterTheGrace() {
        var m = machine(grace: 5)
        running(&m)
        XCTAssertEqual(text(m.stop(waiter: 1, now: t0)), ["SIGTERM 7"])
        XCTAssertEqual(m.state, .stopping)
        XCTAssertEqual(m.nextDeadline, t0 + 5 * second)
        XCTAssertTrue(m.tick(now: t0 + 5 * second - 1).isEmpty)
        XCTAssertEqual(text(m.tick(now: t0 + 5 * second)), ["grace expired 7", "SIGKILL 7"])
        XCTAssertNil(m.nextDeadline, "SIGKILL is the last step")
        XCTAssertEqual(text(m.exited(pid: 7, .signalled(9), now: t0 + 6 * second)), ["stopped signal 9", "notify [1]"])
        XCTAssertEqual(m.state, .stopped)
        XCTAssertNil(m.pid)
        XCTAssertTrue(m.tick(now: t0 + 3600 * second).isEmpty, "no restart after a stop")
    }

    func testAProcessThatStopsWithinTheGraceIsNotKilled() {
        var m = machine(grace: 5)
        running(&m)
        _ = m.stop(waiter: 1, now: t0)
        XCTAssertEqual(text(m.exited(pid: 7, .exited(0), now: t0 + second)), ["stopped exit 0", "notify [1]"])
        XCTAssertTrue(m.tick(now: t0 + 10 * second).isEmpty)
    }

    func testAZeroGraceKillsAtTheNextTick() {
        var m = machine(grace: 0)
        running(&m)
        XCTAssertEqual(text(m.stop(waiter: 1, now: t0)), ["SIGTERM 7"])
        XCTAssertEqual(text(m.tick(now: t0)), ["grace expired 7", "SIGKILL 7"])
    }

    func testEveryStopWaiterIsToldOnceTheProcessIsGone() {
        var m = machine()
        running(&m)
        XCTAssertEqual(text(m.stop(waiter: 1, now: t0)), ["SIGTERM 7"])
        XCTAssertTrue(m.stop(waiter: 2, now: t0 + second).isEmpty, "one teardown")
        XCTAssertEqual(text(m.exited(pid: 7, .exited(0), now: t0 + 2 * second)), ["stopped exit 0", "notify [1, 2]"])
    }

    func testStoppingDuringTheBackoffCancelsTheRestart() {
        var m = machine()
        running(&m)
        _ = m.exited(pid: 7, .exited(3), now: t0)
        XCTAssertEqual(m.state, .backoff)
        XCTAssertEqual(text(m.stop(waiter: 4, now: t0)), ["notify [4]"])
        XCTAssertEqual(m.state, .stopped)
        XCTAssertNil(m.nextDeadline)
        XCTAssertTrue(m.tick(now: t0 + 60 * second).isEmpty)
        XCTAssertEqual(m.lastExit, "exit 3")
    }

    func testAHangingSidecarIsKilledAndRestarted() {
        var m = machine()
        running(&m)
        XCTAssertEqual(text(m.healthFailed()), ["hangs 7", "SIGKILL 7"])
        XCTAssertEqual(text(m.exited(pid: 7, .signalled(9), now: t0 + second)), ["unexpected signal 9", "restart in 0.5 at +1.5"])
        XCTAssertTrue(m.healthFailed().isEmpty, "nothing to kill in the backoff")
    }

    func testAnotherProcessExitIsNotThisSidecars() {
        var m = machine()
        running(&m)
        XCTAssertTrue(m.exited(pid: 99, .exited(0), now: t0).isEmpty)
        XCTAssertEqual(m.state, .running)
    }

    func testATeardownPlanAlwaysEndsWithSigkill() {
        XCTAssertEqual(TeardownPlan(grace: 2).steps.map(\.signal), [.terminate, .kill])
        XCTAssertEqual(TeardownPlan(grace: 2).grace, 2)
        XCTAssertEqual(TeardownPlan(steps: [.init(signal: .terminate, wait: 1), .init(signal: .terminate, wait: 1)]).steps.map(\.signal),
                       [.terminate, .terminate, .kill])
        XCTAssertEqual(TeardownPlan(steps: []).steps.map(\.signal), [.kill])
        XCTAssertEqual(TeardownPlan(steps: [.init(signal: .kill, wait: 0)]).steps.count, 1)
    }

    func testTheBackoffDoublesUpToItsCap() {
        let p = policy(initial: 0.5, max: 30)
        XCTAssertEqual((0..<8).map { p.backoff(attempt: $0) }, [0.5, 1, 2, 4, 8, 16, 30, 30])
        XCTAssertEqual(p.backoff(attempt: 10_000), 30)
    }
}
