import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

final class WillTests: XCTestCase {
    private func will(delay: UInt32? = nil, qos: QoS = .atMostOnce) -> Will {
        var props = Properties()
        if let delay { props.items.append(.willDelayInterval(delay)) }
        return Will(topic: "will/w", payload: payload("gone"), qos: qos, retain: false, properties: props)
    }

    private func watcher(_ h: Harness) throws -> TestClient {
        let sub = try h.client(.v5)
        try sub.connect("watcher")
        try sub.subscribe("will/#")
        return sub
    }

    private func connectWithWill(_ h: Harness, delay: UInt32? = nil, expiry: UInt32 = 10) throws -> TestClient {
        let c = try h.client(.v5)
        try c.connect("w", properties: [.sessionExpiryInterval(expiry)], will: will(delay: delay))
        return c
    }

    func testWillIsPublishedAtOnceOnAbruptClose() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h).drop()
        let got = try sub.publishes()
        XCTAssertEqual(got.map(\.topic), ["will/w"])
        XCTAssertEqual(got.first.map { String(buffer: $0.payload) }, "gone")
    }

    func testDelayedWillIsPublishedAfterTheDelay() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h, delay: 3).drop()
        h.advance(seconds: 2)
        XCTAssertEqual(try sub.publishes(), [])
        h.advance(seconds: 1)
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testDelayedWillIsCancelledWhenTheClientReconnects() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h, delay: 3).drop()
        h.advance(seconds: 2)
        let back = try h.client(.v5)
        XCTAssertEqual(try back.connect("w", cleanStart: false, properties: [.sessionExpiryInterval(10)])?.sessionPresent, true)
        h.advance(seconds: 20)
        XCTAssertEqual(try sub.publishes(), [])
        XCTAssertTrue(back.isActive)
    }

    func testDelayedWillIsPublishedWhenTheReconnectStartsClean() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h, delay: 3).drop()
        h.advance(seconds: 1)
        try h.client(.v5).connect("w", cleanStart: true)
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testWillDelayIsCutShortBySessionExpiry() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h, delay: 30, expiry: 2).drop()
        h.advance(seconds: 1)
        XCTAssertEqual(try sub.publishes(), [])
        h.advance(seconds: 1)
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testDelayedWillWithZeroSessionExpiryIsPublishedAtOnce() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h, delay: 30, expiry: 0).drop()
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testNormalDisconnectDiscardsTheWill() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        let c = try connectWithWill(h)
        try c.send(.disconnect(DisconnectPacket(reasonCode: .normalDisconnection)))
        XCTAssertFalse(c.isActive)
        h.advance(seconds: 60)
        XCTAssertEqual(try sub.publishes(), [])
    }

    func testDisconnectWithWillMessagePublishesTheWill() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        let c = try connectWithWill(h)
        try c.send(.disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage)))
        XCTAssertFalse(c.isActive)
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testV311DisconnectDiscardsTheWill() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        let c = try h.client(.v3_1_1)
        try c.connect("w3", will: Will(topic: "will/w3", payload: payload("x"), qos: .atMostOnce, retain: false))
        try c.send(.disconnect(DisconnectPacket()))
        XCTAssertFalse(c.isActive)
        XCTAssertEqual(try sub.publishes(), [])
    }

    func testV311AbruptCloseSendsTheWill() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        let c = try h.client(.v3_1_1)
        try c.connect("w3", will: Will(topic: "will/w3", payload: payload("x"), qos: .atMostOnce, retain: false))
        c.drop()
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w3"])
    }

    func testKeepAliveTimeoutSendsTheWill() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        let c = try h.client(.v5)
        try c.connect("w", keepAlive: 2, will: will())
        h.advance(seconds: 3)
        XCTAssertFalse(c.isActive)
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testTakeoverSendsTheWillOfTheOldConnection() throws {
        let h = makeHarness()
        let sub = try watcher(h)
        try connectWithWill(h)
        try h.client(.v5).connect("w")
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/w"])
    }

    func testWillOnSysTopicIsRefused() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        let ack = try c.connect("w", will: Will(topic: "$SYS/x", payload: payload("x"), qos: .atMostOnce, retain: false))
        XCTAssertEqual(ack?.reasonCode, .notAuthorized)
        XCTAssertFalse(c.isActive)
    }
}
