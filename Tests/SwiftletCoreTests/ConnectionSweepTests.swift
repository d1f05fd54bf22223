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

final class CompactRecvAllocatorTests: XCTestCase {
    func testStartsSmallGrowsOnFullReadsAndShrinksAfterTwoSmallOnes() {
        var a = CompactRecvAllocator()
        XCTAssertEqual(a.nextBufferSize(), 128)
        XCTAssertFalse(a.record(actualReadBytes: 100))
        XCTAssertEqual(a.nextBufferSize(), 128)
        var size = 128
        while size < 65_536 {
            XCTAssertTrue(a.record(actualReadBytes: size))
            size *= 2
            XCTAssertEqual(a.nextBufferSize(), size)
        }
        XCTAssertFalse(a.record(actualReadBytes: 65_536), "never above 64 KiB")
        XCTAssertEqual(a.nextBufferSize(), 65_536)
        XCTAssertFalse(a.record(actualReadBytes: 10))
        XCTAssertEqual(a.nextBufferSize(), 65_536, "one small read does not shrink")
        XCTAssertFalse(a.record(actualReadBytes: 10))
        XCTAssertEqual(a.nextBufferSize(), 32_768)
        for _ in 0..<40 { _ = a.record(actualReadBytes: 2) }
        XCTAssertEqual(a.nextBufferSize(), 64, "never below 64 B")
        XCTAssertEqual(a.buffer(allocator: ByteBufferAllocator()).capacity, 64)
    }
}
