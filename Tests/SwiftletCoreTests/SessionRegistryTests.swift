import SwiftletConfig
import NIOCore
import NIOEmbedded
import XCTest
@testable import SwiftletCore

/// `claimNew`, the usual CONNECT's way to a new session without the per-client-id chain: it
/// may only make one when nothing else could own or be changing that client id's session.
final class SessionRegistryTests: XCTestCase {
    private func session(_ id: String) -> Session {
        Session(clientId: id, loopIndex: 0, version: .v5, expiry: 0, limits: MQTTConfig(), store: nil)
    }

    func testClaimNewMakesAndRegistersWhenNothingIsThere() {
        let r = SessionRegistry()
        let s = r.claimNew("a") { session("a") }
        XCTAssertNotNil(s)
        XCTAssertTrue(r.get("a") === s)
        XCTAssertEqual(r.count, 1)
    }

    func testALiveSessionIsLeftToTheChain() {
        let r = SessionRegistry()
        let old = session("a")
        r.put(old)
        var made = false
        XCTAssertNil(r.claimNew("a") { made = true; return session("a") })
        XCTAssertFalse(made, "nothing is made when the claim fails")
        XCTAssertTrue(r.get("a") === old)
    }

    func testAnEndedSessionIsReplaced() {
        let r = SessionRegistry()
        let old = session("a")
        old.terminated = true
        r.put(old)
        let s = r.claimNew("a") { session("a") }
        XCTAssertNotNil(s)
        XCTAssertFalse(s === old)
        XCTAssertTrue(r.get("a") === s)
    }

    func testAPendingStepForTheClientIdIsWaitedFor() {
        let r = SessionRegistry()
        let loop = EmbeddedEventLoop()
        let step = loop.makePromise(of: Void.self)
        r.serialize("a", on: loop) { step.futureResult }
        XCTAssertNil(r.claimNew("a") { session("a") }, "a takeover or expiry is still running for this id")
        XCTAssertNotNil(r.claimNew("b") { session("b") }, "other client ids are not held up")
        step.succeed(())
        loop.run()
        XCTAssertNotNil(r.claimNew("a") { session("a") })
        try? loop.syncShutdownGracefully()
    }
}
