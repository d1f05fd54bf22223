import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

/// The loop's one-a-second sweep that replaced per-connection keep alive, idle and retry timers.
final class ConnectionSweepTests: XCTestCase {
    func testEveryConnectionThatTimesOutInTheSameSweepIsClosed() throws {
        // Closing a connection swaps the last one into its slot during the walk: none is skipped.
        let h = makeHarness()
        let clients = try (0..<5).map { i -> TestClient in
            let c = try h.client(.v5)
            try c.connect("k\(i)", keepAlive: i == 2 ? 100 : 10)
            return c
        }
        h.advance(seconds: 15)
        for (i, c) in clients.enumerated() where i != 2 {
            XCTAssertEqual(disconnectReason(try c.packets()), .keepAliveTimeout, "client \(i)")
            XCTAssertFalse(c.isActive, "client \(i)")
        }
        XCTAssertTrue(clients[2].isActive)
        XCTAssertEqual(h.ctx.connectionSweep.count, 1)
    }

    func testClosedConnectionsLeaveTheSweep() throws {
        let h = makeHarness()
        let a = try h.client(.v3_1_1)
        let b = try h.client(.v3_1_1)
        XCTAssertEqual(h.ctx.connectionSweep.count, 2)
        try a.connect("a", keepAlive: 0)
        try b.connect("b", keepAlive: 0)
        try a.channel.close().wait()
        h.run()
        XCTAssertEqual(h.ctx.connectionSweep.count, 1)
        try b.channel.close().wait()
        h.run()
        XCTAssertEqual(h.ctx.connectionSweep.count, 0)
        // Without keep alive nothing closes a connected client, however long it is quiet.
        let c = try h.client(.v3_1_1)
        try c.connect("c", keepAlive: 0)
        h.advance(seconds: 1_000)
        XCTAssertTrue(c.isActive)
    }

    func testAClientThatNeverSendsConnectIsClosedAfterIdleTimeout() throws {
        let h = makeHarness { $0.mqtt.idleTimeout = 3 }
        let quiet = try h.client(.v5)
        h.advance(seconds: 2)
        XCTAssertTrue(quiet.isActive)
        h.advance(seconds: 1)
        XCTAssertFalse(quiet.isActive)
        XCTAssertEqual(h.ctx.connectionSweep.count, 0)
    }
}
