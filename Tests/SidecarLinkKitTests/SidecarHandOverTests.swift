import XCTest
@testable import SidecarLinkKit

/// `plugins reload NAME` as a hand-over (`SidecarHandOver`) and the supervision of the two
/// processes it involves (`SidecarSupervision.restartsOnExit`), with a manual clock.
final class SidecarHandOverTests: XCTestCase {
    private let t0: UInt64 = 1_000_000_000_000
    private let second: UInt64 = 1_000_000_000

    private func handOver() -> SidecarHandOver {
        SidecarHandOver(name: "auth_http", now: t0, registerTimeout: 10 * second, drainTimeout: 6 * second)
    }

    func testOldStopsOnlyWhenItsRequestsAreAnswered() {
        var h = handOver()
        XCTAssertEqual(h.nextDeadline, t0 + 10 * second)
        XCTAssertEqual(h.newRegistered(now: t0 + second), [])
        XCTAssertEqual(h.phase, .draining)
        XCTAssertEqual(h.oldOutstanding(3), [])
        XCTAssertEqual(h.oldOutstanding(1), [])
        XCTAssertEqual(h.phase, .draining)
        XCTAssertEqual(h.oldOutstanding(0), [.stopOld])
        XCTAssertEqual(h.phase, .stopping)
        XCTAssertEqual(h.oldOutstanding(0), [], "stopOld is asked once")
        guard case .finished(let text)? = h.oldStopped().first else { return XCTFail("not finished") }
        XCTAssertTrue(text.contains("auth_http reloaded"), text)
        XCTAssertFalse(text.contains("outstanding"), text)
        XCTAssertTrue(h.isOver)
        XCTAssertNil(h.nextDeadline)
    }

    func testDrainTimeoutStopsTheOldOneAndSaysWhatWasLeft() {
        var h = handOver()
        _ = h.newRegistered(now: t0 + second)
        _ = h.oldOutstanding(2)
        XCTAssertEqual(h.tick(now: t0 + 6 * second), [], "before the drain deadline")
        XCTAssertEqual(h.tick(now: t0 + 7 * second), [.stopOld])
        XCTAssertEqual(h.abandoned, 2)
        guard case .finished(let text)? = h.oldStopped().first else { return XCTFail("not finished") }
        XCTAssertTrue(text.contains("2 request(s) still outstanding"), text)
    }

    func testNewProcessThatNeverRegistersIsStoppedAndTheOldOneKeepsServing() {
        var h = handOver()
        XCTAssertEqual(h.tick(now: t0 + 9 * second), [])
        let actions = h.tick(now: t0 + 10 * second)
        XCTAssertEqual(actions.first, .stopNew)
        guard case .failed(let text)? = actions.last else { return XCTFail("not failed") }
        XCTAssertTrue(text.contains("keeps serving"), text)
        XCTAssertEqual(h.phase, .failed)
        XCTAssertEqual(h.newRegistered(now: t0 + 11 * second), [], "a late registration changes nothing")
    }

    func testNewProcessThatEndsBeforeRegisteringFailsTheReload() {
        var h = handOver()
        guard case .failed(let text)? = h.newEnded("ended (exit 2)").first else { return XCTFail("not failed") }
        XCTAssertTrue(text.contains("exit 2"), text)
        XCTAssertEqual(h.newEnded("again"), [])
        XCTAssertEqual(h.tick(now: t0 + 20 * second), [])
    }

    func testNewProcessEndingAfterItRegisteredIsNotTheReloadsBusiness() {
        var h = handOver()
        _ = h.newRegistered(now: t0)
        XCTAssertEqual(h.newEnded("ended (signal 9)"), [], "it is supervised as the sidecar now")
        XCTAssertEqual(h.phase, .draining)
    }

    // MARK: The processes' supervision

    func testAProcessThatMustNotRestartIsLeftStoppedWhenItExits() {
        var m = SidecarSupervision<Int>(restart: RestartPolicy(), teardown: TeardownPlan(grace: 1))
        m.restartsOnExit = false
        XCTAssertEqual(m.load().count, 1)
        _ = m.spawned(pid: 42, now: t0)
        let actions = m.exited(pid: 42, .exited(2), now: t0 + second)
        XCTAssertEqual(m.state, .stopped)
        XCTAssertNil(m.nextDeadline, "no restart scheduled")
        XCTAssertEqual(actions.count, 2)
        XCTAssertEqual(m.restarts, 0)
    }

    func testAFailedSpawnOfAProcessThatMustNotRestartLeavesItStopped() {
        var m = SidecarSupervision<Int>(restart: RestartPolicy(), teardown: TeardownPlan(grace: 1))
        m.restartsOnExit = false
        _ = m.load()
        XCTAssertEqual(m.spawnFailed("no such file", now: t0).count, 0)
        XCTAssertEqual(m.state, .stopped)
        XCTAssertEqual(m.lastExit, "no such file")
    }

    func testTheOldProcessIsStoppedByItsTeardownPlanWithoutARestart() {
        var m = SidecarSupervision<Int>(restart: RestartPolicy(), teardown: TeardownPlan(grace: 1))
        _ = m.load()
        _ = m.spawned(pid: 7, now: t0)
        m.restartsOnExit = false
        XCTAssertEqual(m.stop(waiter: 1, now: t0).count, 1)
        let done = m.exited(pid: 7, .exited(0), now: t0 + second)
        XCTAssertEqual(m.state, .stopped)
        guard case .notify(let w)? = done.last else { return XCTFail("waiter not told") }
        XCTAssertEqual(w, [1])
    }
}
