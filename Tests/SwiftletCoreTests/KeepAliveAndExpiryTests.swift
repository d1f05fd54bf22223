import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

final class KeepAliveTests: XCTestCase {
    func testV5ClientIsDisconnectedAfterOneAndAHalfKeepAlives() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("k", keepAlive: 10)
        h.advance(seconds: 14)
        XCTAssertTrue(c.isActive)
        XCTAssertEqual(try c.packets(), [])
        h.advance(seconds: 1)
        XCTAssertEqual(disconnectReason(try c.packets()), .keepAliveTimeout)
        XCTAssertFalse(c.isActive)
    }

    func testV311ClientIsClosedWithoutOutputAfterKeepAlive() throws {
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.connect("k", keepAlive: 10)
        h.advance(seconds: 14)
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1)
        XCTAssertEqual(try c.receivedBytes(), [])
        XCTAssertFalse(c.isActive)
    }

    func testPingReqPushesTheDeadline() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("k", keepAlive: 10)
        h.advance(seconds: 12)
        try c.send(.pingreq)
        XCTAssertEqual(try c.packets(), [.pingresp])
        h.advance(seconds: 14) // t = 26
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1) // t = 27
        XCTAssertEqual(disconnectReason(try c.packets()), .keepAliveTimeout)
        XCTAssertFalse(c.isActive)
    }

    func testKeepAliveCountsFromTheConnectNotFromTheChannelOpening() throws {
        let h = makeHarness { $0.mqtt.idleTimeout = 60 }
        let c = try h.client(.v5)
        h.advance(seconds: 10)
        try c.connect("k", keepAlive: 10)
        h.advance(seconds: 14) // t = 24
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1) // t = 25
        XCTAssertFalse(c.isActive)
    }

    func testAnyPacketCountsAsActivity() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("k", keepAlive: 10)
        h.advance(seconds: 10)
        try c.publish("t", "x")
        h.advance(seconds: 14) // t = 24
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1)
        XCTAssertFalse(c.isActive)
    }

    func testKeepAliveZeroNeverTimesOut() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("k", keepAlive: 0)
        h.advance(seconds: 100_000)
        XCTAssertTrue(c.isActive)
    }

    func testKeepaliveBackoffIsConfigurable() throws {
        let h = makeHarness { $0.mqtt.keepaliveBackoff = 2 }
        let c = try h.client(.v5)
        try c.connect("k", keepAlive: 10)
        h.advance(seconds: 19)
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1)
        XCTAssertFalse(c.isActive)
    }

    func testServerKeepAliveOverridesTheClientsAndIsAnnounced() throws {
        let h = makeHarness { $0.mqtt.serverKeepAlive = 4 }
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect("k", keepAlive: 100))
        XCTAssertEqual(ack.properties.serverKeepAlive, 4)
        h.advance(seconds: 5)
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1)
        XCTAssertEqual(disconnectReason(try c.packets()), .keepAliveTimeout)
        XCTAssertFalse(c.isActive)
    }
}

final class SessionExpiryTests: XCTestCase {
    private func connectWithSession(_ h: Harness, expiry: UInt32) throws -> TestClient {
        let c = try h.client(.v5)
        try c.connect("s", cleanStart: true, properties: [.sessionExpiryInterval(expiry)])
        try c.subscribe("t", qos: .atLeastOnce)
        return c
    }

    private func reconnect(_ h: Harness) throws -> ConnAckPacket? {
        try h.client(.v5).connect("s", cleanStart: false, properties: [.sessionExpiryInterval(5)])
    }

    func testSessionSurvivesWithinItsExpiryInterval() throws {
        let h = makeHarness()
        try connectWithSession(h, expiry: 5).drop()
        h.advance(seconds: 4)
        XCTAssertEqual(try reconnect(h)?.sessionPresent, true)
    }

    func testSessionEndsAfterItsExpiryInterval() throws {
        let h = makeHarness()
        try connectWithSession(h, expiry: 5).drop()
        h.advance(seconds: 6)
        XCTAssertNil(h.broker.registry.get("s"))
        XCTAssertEqual(try reconnect(h)?.sessionPresent, false)
    }

    func testSessionKeepsSubscriptionsAndQueuesWhileOffline() throws {
        let h = makeHarness()
        try connectWithSession(h, expiry: 5).drop()
        let pub = try h.client(.v5)
        try pub.connect("pub")
        try pub.publish("t", "while-away", qos: .atLeastOnce)
        h.advance(seconds: 4)
        let c = try h.client(.v5)
        try c.send(.connect(ConnectPacket(protocolVersion: .v5, cleanStart: false, keepAlive: 0,
                                          properties: [.sessionExpiryInterval(5)], clientId: "s")))
        let got = try c.packets()
        guard case .connack(let ack) = got.first, got.count == 2, case .publish(let p) = got[1] else {
            return XCTFail("expected CONNACK then PUBLISH, got \(got)")
        }
        XCTAssertTrue(ack.sessionPresent)
        XCTAssertEqual(p.topic, "t")
        XCTAssertEqual(String(buffer: p.payload), "while-away")
    }

    func testCleanStartDiscardsTheSession() throws {
        let h = makeHarness()
        try connectWithSession(h, expiry: 60).drop()
        let c = try h.client(.v5)
        XCTAssertEqual(try c.connect("s", cleanStart: true, properties: [.sessionExpiryInterval(60)])?.sessionPresent, false)
    }

    func testZeroExpiryEndsTheSessionAtDisconnect() throws {
        let h = makeHarness()
        try connectWithSession(h, expiry: 0).drop()
        XCTAssertNil(h.broker.registry.get("s"))
        XCTAssertEqual(try reconnect(h)?.sessionPresent, false)
    }

    func testDisconnectCanShortenTheExpiry() throws {
        let h = makeHarness()
        let c = try connectWithSession(h, expiry: 60)
        try c.send(.disconnect(DisconnectPacket(properties: [.sessionExpiryInterval(2)])))
        XCTAssertFalse(c.isActive)
        h.advance(seconds: 3)
        XCTAssertEqual(try reconnect(h)?.sessionPresent, false)
    }

    func testDisconnectCannotSetExpiryAfterZero() throws {
        let h = makeHarness()
        let c = try connectWithSession(h, expiry: 0)
        try c.send(.disconnect(DisconnectPacket(properties: [.sessionExpiryInterval(30)])))
        XCTAssertEqual(disconnectReason(try c.packets()), .protocolError)
        XCTAssertFalse(c.isActive)
    }

    func testExpiryIsCappedByMaxSessionExpiryInterval() throws {
        let h = makeHarness { $0.mqtt.maxSessionExpiryInterval = 3 }
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect("s", properties: [.sessionExpiryInterval(100)]))
        XCTAssertEqual(ack.properties.sessionExpiryInterval, 3)
        c.drop()
        h.advance(seconds: 4)
        XCTAssertEqual(try reconnect(h)?.sessionPresent, false)
    }

    func testV311PersistentSessionUsesConfiguredExpiry() throws {
        let h = makeHarness { $0.mqtt.sessionExpiryInterval = 10 }
        let c = try h.client(.v3_1_1)
        try c.connect("v3", cleanStart: false)
        c.drop()
        h.advance(seconds: 9)
        XCTAssertEqual(try h.client(.v3_1_1).connect("v3", cleanStart: false)?.sessionPresent, true)
    }

    func testV311PersistentSessionExpires() throws {
        let h = makeHarness { $0.mqtt.sessionExpiryInterval = 10 }
        let c = try h.client(.v3_1_1)
        try c.connect("v3", cleanStart: false)
        c.drop()
        h.advance(seconds: 11)
        XCTAssertEqual(try h.client(.v3_1_1).connect("v3", cleanStart: false)?.sessionPresent, false)
    }
}
