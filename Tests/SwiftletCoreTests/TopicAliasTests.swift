import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

final class TopicAliasTests: XCTestCase {
    private func publisher(_ h: Harness) throws -> TestClient {
        let c = try h.client(.v5)
        try c.connect("pub")
        return c
    }

    func testAliasZeroIsDisconnectedWith0x94() throws {
        let h = makeHarness()
        let c = try publisher(h)
        try c.publish("a", "x", properties: [.topicAlias(0)])
        XCTAssertEqual(disconnectReason(try c.packets()), .topicAliasInvalid)
        XCTAssertFalse(c.isActive)
    }

    func testAliasAboveMaximumIsDisconnectedWith0x94() throws {
        let h = makeHarness { $0.mqtt.maxTopicAlias = 10 }
        let c = try publisher(h)
        try c.publish("a", "x", properties: [.topicAlias(11)])
        XCTAssertEqual(disconnectReason(try c.packets()), .topicAliasInvalid)
        XCTAssertFalse(c.isActive)
    }

    func testAliasAtMaximumIsAccepted() throws {
        let h = makeHarness { $0.mqtt.maxTopicAlias = 10 }
        let c = try publisher(h)
        try c.publish("a", "x", properties: [.topicAlias(10)])
        XCTAssertEqual(try c.packets(), [])
        XCTAssertTrue(c.isActive)
    }

    func testAnyAliasIsInvalidWhenAliasesAreDisabled() throws {
        let h = makeHarness { $0.mqtt.maxTopicAlias = 0 }
        let c = try publisher(h)
        try c.publish("a", "x", properties: [.topicAlias(1)])
        XCTAssertEqual(disconnectReason(try c.packets()), .topicAliasInvalid)
    }

    func testEmptyTopicWithUnknownAliasIsAProtocolError() throws {
        let h = makeHarness()
        let c = try publisher(h)
        try c.publish("", "x", properties: [.topicAlias(5)])
        XCTAssertEqual(disconnectReason(try c.packets()), .protocolError)
        XCTAssertFalse(c.isActive)
    }

    func testAliasSetThenUsedDeliversTheFullTopic() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("sub")
        try sub.subscribe("x/y")
        let c = try publisher(h)
        try c.publish("x/y", "first", properties: [.topicAlias(3)])
        try c.publish("", "second", properties: [.topicAlias(3)])
        let got = try sub.publishes()
        XCTAssertEqual(got.map(\.topic), ["x/y", "x/y"])
        XCTAssertEqual(got.map { String(buffer: $0.payload) }, ["first", "second"])
        XCTAssertTrue(got.allSatisfy { $0.properties.topicAlias == nil })
        XCTAssertTrue(c.isActive)
    }

    func testAliasCanBeRemapped() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("sub")
        try sub.subscribe("#")
        let c = try publisher(h)
        try c.publish("one", "1", properties: [.topicAlias(1)])
        try c.publish("two", "2", properties: [.topicAlias(1)])
        try c.publish("", "3", properties: [.topicAlias(1)])
        XCTAssertEqual(try sub.publishes().map(\.topic), ["one", "two", "two"])
    }

    func testAliasesArePerConnection() throws {
        let h = makeHarness()
        let c = try publisher(h)
        try c.publish("x/y", "first", properties: [.topicAlias(3)])
        let other = try h.client(.v5)
        try other.connect("other")
        try other.publish("", "x", properties: [.topicAlias(3)])
        XCTAssertEqual(disconnectReason(try other.packets()), .protocolError)
        XCTAssertTrue(c.isActive)
    }

    func testOutboundAliasesAreUsedWhenTheSubscriberAllowsThem() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("sub", properties: [.topicAliasMaximum(5)])
        try sub.subscribe("x/y")
        let c = try publisher(h)
        try c.publish("x/y", "1")
        try c.publish("x/y", "2")
        let got = try sub.publishes()
        XCTAssertEqual(got.map(\.topic), ["x/y", ""])
        XCTAssertEqual(got.map(\.properties.topicAlias), [1, 1])
    }
}
