import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import XCTest
@testable import SwiftletCore

/// The broker's parts as services in one ServiceGroup: started in order, each after the one
/// before it is up; stopped in reverse; a part that fails to start stops those before it and
/// the ones after it never start.
final class BrokerServicesTests: XCTestCase {
    final class Journal: @unchecked Sendable {
        private let lock = NIOLock()
        private var entries: [String] = []
        func add(_ e: String) { lock.withLock { entries.append(e) } }
        var all: [String] { lock.withLock { entries } }
    }

    struct Boom: Error {}

    final class Probe: BrokerPart, @unchecked Sendable {
        let name: String
        let journal: Journal
        let fails: Bool
        let startDelay: UInt64
        let stopDelay: UInt64
        init(_ name: String, _ journal: Journal, fails: Bool = false, startDelay: UInt64 = 0, stopDelay: UInt64 = 0) {
            self.name = name
            self.journal = journal
            self.fails = fails
            self.startDelay = startDelay
            self.stopDelay = stopDelay
        }
        func start() async throws {
            // A slow start: the next part must still wait for it.
            if startDelay > 0 { try await Task.sleep(nanoseconds: startDelay) }
            if fails { journal.add("fail \(name)"); throw Boom() }
            journal.add("start \(name)")
        }
        func stop() async {
            // A slow stop: a part stopping at the same time as another would show in between.
            if stopDelay > 0 {
                journal.add("stopping \(name)")
                try? await Task.sleep(nanoseconds: stopDelay)
            }
            journal.add("stop \(name)")
        }
    }

    private func group(_ parts: [any BrokerPart]) -> ServiceGroup {
        var previous: Readiness?
        let services = parts.map { part -> ServiceGroupConfiguration.ServiceConfiguration in
            let ready = Readiness()
            defer { previous = ready }
            return .init(service: BrokerPartService(part: part, after: previous, ready: ready),
                         successTerminationBehavior: .gracefullyShutdownGroup,
                         failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return ServiceGroup(configuration: .init(services: services, logger: logger))
    }

    /// Waits (bounded) until the journal has `count` entries.
    private func settle(_ journal: Journal, count: Int) async {
        for _ in 0..<500 where journal.all.count < count { try? await Task.sleep(nanoseconds: 10_000_000) }
    }

    func testStartInOrderStopInReverse() async throws {
        let journal = Journal()
        // The first part is the slowest to start: order must not depend on speed.
        let g = group([Probe("store", journal, startDelay: 50_000_000), Probe("sidecars", journal, startDelay: 10_000_000),
                       Probe("listeners", journal)])
        async let run: Void = g.run()
        await settle(journal, count: 3)
        XCTAssertEqual(journal.all, ["start store", "start sidecars", "start listeners"])
        await g.triggerGracefulShutdown()
        try await run
        XCTAssertEqual(journal.all, ["start store", "start sidecars", "start listeners",
                                     "stop listeners", "stop sidecars", "stop store"])
    }

    func testFailedStartStopsEarlierPartsAndNeverStartsLaterOnes() async throws {
        let journal = Journal()
        let g = group([Probe("store", journal), Probe("sidecars", journal, fails: true), Probe("listeners", journal)])
        do {
            try await g.run()
            XCTFail("the group must report the failed start")
        } catch {
            XCTAssertTrue(error is Boom, "\(error)")
        }
        XCTAssertEqual(journal.all, ["start store", "fail sidecars", "stop store"])
    }

    /// Several parts after the failed one never start; they must not end before the group
    /// asks them to (ServiceGroup would cancel every service, and the started parts would stop
    /// at once, the event loops under the supervisor: seen as a crash of a broker whose TLS
    /// listener could not load its key).
    func testFailedStartStopsEarlierPartsOneAtATimeWithSeveralNeverStarted() async throws {
        for _ in 0..<5 {
            let journal = Journal()
            let g = group([Probe("loops", journal, stopDelay: 5_000_000), Probe("store", journal, stopDelay: 5_000_000),
                           Probe("supervisor", journal, stopDelay: 5_000_000), Probe("listeners", journal, fails: true),
                           Probe("sys", journal), Probe("dashboard", journal), Probe("notifier", journal)])
            do {
                try await g.run()
                XCTFail("the group must report the failed start")
            } catch {
                XCTAssertTrue(error is Boom, "\(error)")
            }
            XCTAssertEqual(journal.all, ["start loops", "start store", "start supervisor", "fail listeners",
                                         "stopping supervisor", "stop supervisor", "stopping store", "stop store",
                                         "stopping loops", "stop loops"])
        }
    }

    func testShutdownDuringStartupStopsWhatStarted() async throws {
        let journal = Journal()
        let g = group([Probe("store", journal), Probe("sidecars", journal, startDelay: 200_000_000), Probe("listeners", journal)])
        async let run: Void = g.run()
        await settle(journal, count: 1)
        await g.triggerGracefulShutdown()
        try await run
        // sidecars finishes its start, then stops; listeners never started.
        XCTAssertEqual(journal.all, ["start store", "start sidecars", "stop sidecars", "stop store"])
    }

    func testReadinessOpensOnceAndWaitIsCancellable() async {
        let r = Readiness()
        r.open()
        r.fail()
        let opened = await r.wait()
        XCTAssertTrue(opened)
        let pending = Readiness()
        let t = Task { await pending.wait() }
        t.cancel()
        let cancelled = await t.value
        XCTAssertFalse(cancelled)
    }

    /// The real broker's parts, by name, in start order.
    func testBrokerPartsOrder() {
        let h = makeHarness()
        XCTAssertEqual(h.broker.parts.map(\.name), ["event loops", "store", "sidecar socket", "supervisor", "ctl", "listeners", "$SYS"])
    }
}
