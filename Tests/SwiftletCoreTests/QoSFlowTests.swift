import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

final class RetryTests: XCTestCase {
    private func setup(_ h: Harness, subscriber version: ProtocolVersion) throws -> (sub: TestClient, pub: TestClient) {
        let sub = try h.client(version)
        try sub.connect("sub", cleanStart: version != .v5 ? false : true,
                        properties: version == .v5 ? [.sessionExpiryInterval(60)] : [])
        try sub.subscribe("t", qos: .atLeastOnce)
        let pub = try h.client(.v5)
        try pub.connect("pub")
        return (sub, pub)
    }

    func testV311UnackedQoS1IsResentWithDupAfterRetryInterval() throws {
        let h = makeHarness { $0.mqtt.retryInterval = 5 }
        let (sub, pub) = try setup(h, subscriber: .v3_1_1)
        try pub.publish("t", "m", qos: .atLeastOnce)
        let first = try sub.publishes()
        XCTAssertEqual(first.count, 1)
        XCTAssertEqual(first.first?.dup, false)
        h.advance(seconds: 4)
        XCTAssertEqual(try sub.publishes(), [])
        h.advance(seconds: 1)
        let again = try sub.publishes()
        XCTAssertEqual(again.count, 1)
        XCTAssertEqual(again.first?.dup, true)
        XCTAssertEqual(again.first?.packetId, first.first?.packetId)
        XCTAssertEqual(again.first.map { String(buffer: $0.payload) }, "m")
    }

    func testV311AckedQoS1IsNotResent() throws {
        let h = makeHarness { $0.mqtt.retryInterval = 5 }
        let (sub, pub) = try setup(h, subscriber: .v3_1_1)
        try pub.publish("t", "m", qos: .atLeastOnce)
        let id = try XCTUnwrap(sub.publishes().first?.packetId)
        try sub.send(.puback(PubAckPacket(packetId: id)))
        h.advance(seconds: 20)
        XCTAssertEqual(try sub.publishes(), [])
    }

    func testV311UnansweredPubRelIsResent() throws {
        let h = makeHarness { $0.mqtt.retryInterval = 5 }
        let sub = try h.client(.v3_1_1)
        try sub.connect("sub")
        try sub.subscribe("t", qos: .exactlyOnce)
        let pub = try h.client(.v5)
        try pub.connect("pub")
        try pub.publish("t", "m", qos: .exactlyOnce)
        let id = try XCTUnwrap(sub.publishes().first?.packetId)
        try sub.send(.pubrec(PubAckPacket(packetId: id)))
        XCTAssertEqual(try sub.packets(), [.pubrel(PubAckPacket(packetId: id))])
        h.advance(seconds: 5)
        XCTAssertEqual(try sub.packets(), [.pubrel(PubAckPacket(packetId: id))])
        try sub.send(.pubcomp(PubAckPacket(packetId: id)))
        h.advance(seconds: 10)
        XCTAssertEqual(try sub.packets(), [])
    }

    func testV5SubscriberGetsNoRetryInSession() throws {
        let h = makeHarness { $0.mqtt.retryInterval = 5 }
        let (sub, pub) = try setup(h, subscriber: .v5)
        try pub.publish("t", "m", qos: .atLeastOnce)
        XCTAssertEqual(try sub.publishes().count, 1)
        h.advance(seconds: 30)
        XCTAssertEqual(try sub.publishes(), [])
    }

    func testV5UnackedQoS1IsResentWithDupOnReconnect() throws {
        let h = makeHarness { $0.mqtt.retryInterval = 5 }
        let (sub, pub) = try setup(h, subscriber: .v5)
        try pub.publish("t", "m", qos: .atLeastOnce)
        let id = try XCTUnwrap(sub.publishes().first?.packetId)
        sub.drop()
        let back = try h.client(.v5)
        try back.send(.connect(ConnectPacket(protocolVersion: .v5, cleanStart: false, keepAlive: 0,
                                             properties: [.sessionExpiryInterval(60)], clientId: "sub")))
        let got = try back.packets()
        guard got.count == 2, case .connack(let ack) = got[0], case .publish(let p) = got[1] else {
            return XCTFail("expected CONNACK then PUBLISH, got \(got)")
        }
        XCTAssertTrue(ack.sessionPresent)
        XCTAssertTrue(p.dup)
        XCTAssertEqual(p.packetId, id)
        XCTAssertEqual(p.qos, .atLeastOnce)
    }
}

final class InboundQoS2Tests: XCTestCase {
    func testQoS2ResendIsAcknowledgedButRoutedOnce() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("sub")
        try sub.subscribe("t")
        let pub = try h.client(.v5)
        try pub.connect("pub")

        try pub.publish("t", "once", qos: .exactlyOnce, packetId: 7)
        XCTAssertEqual(try pub.packets(), [.pubrec(PubAckPacket(packetId: 7))])
        try pub.send(.publish(PublishPacket(dup: true, qos: .exactlyOnce, topic: "t", packetId: 7, payload: payload("once"))))
        XCTAssertEqual(try pub.packets(), [.pubrec(PubAckPacket(packetId: 7))])
        XCTAssertEqual(try sub.publishes().map { String(buffer: $0.payload) }, ["once"])

        try pub.send(.pubrel(PubAckPacket(packetId: 7)))
        XCTAssertEqual(try pub.packets(), [.pubcomp(PubAckPacket(packetId: 7))])
        XCTAssertEqual(try sub.publishes(), [])
    }

    func testQoS2IdCanBeReusedAfterPubRel() throws {
        let h = makeHarness()
        let sub = try h.client(.v3_1_1)
        try sub.connect("sub")
        try sub.subscribe("t")
        let pub = try h.client(.v3_1_1)
        try pub.connect("pub")
        for text in ["one", "two"] {
            try pub.publish("t", text, qos: .exactlyOnce, packetId: 7)
            XCTAssertEqual(try pub.packets(), [.pubrec(PubAckPacket(packetId: 7))])
            try pub.send(.pubrel(PubAckPacket(packetId: 7)))
            XCTAssertEqual(try pub.packets(), [.pubcomp(PubAckPacket(packetId: 7))])
        }
        XCTAssertEqual(try sub.publishes().map { String(buffer: $0.payload) }, ["one", "two"])
    }

    func testPubRelForUnknownIdIsAnsweredWithPacketIdentifierNotFound() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("c")
        try c.send(.pubrel(PubAckPacket(packetId: 9)))
        XCTAssertEqual(try c.packets(), [.pubcomp(PubAckPacket(packetId: 9, reasonCode: .packetIdentifierNotFound))])
    }

    func testV5ExceedingReceiveMaximumIsDisconnectedWith0x93() throws {
        let h = makeHarness { $0.mqtt.receiveMaximum = 2 }
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect("c"))
        XCTAssertEqual(ack.properties.receiveMaximum, 2)
        try c.publish("t", "1", qos: .exactlyOnce, packetId: 1)
        try c.publish("t", "2", qos: .exactlyOnce, packetId: 2)
        XCTAssertEqual(try c.packets().count, 2)
        XCTAssertTrue(c.isActive)
        try c.publish("t", "3", qos: .exactlyOnce, packetId: 3)
        XCTAssertEqual(disconnectReason(try c.packets()), .receiveMaximumExceeded)
        XCTAssertFalse(c.isActive)
    }

    func testReceiveMaximumCountsOnlyUnreleasedMessages() throws {
        let h = makeHarness { $0.mqtt.receiveMaximum = 2 }
        let c = try h.client(.v5)
        try c.connect("c")
        for id: UInt16 in 1...5 {
            try c.publish("t", "x", qos: .exactlyOnce, packetId: id)
            try c.send(.pubrel(PubAckPacket(packetId: id)))
        }
        XCTAssertTrue(c.isActive)
        XCTAssertNil(disconnectReason(try c.packets()))
    }

    func testV5QoS1WithoutSubscribersIsAckedWithNoMatchingSubscribers() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("c")
        try c.publish("nobody", "x", qos: .atLeastOnce, packetId: 3)
        XCTAssertEqual(try c.packets(), [.puback(PubAckPacket(packetId: 3, reasonCode: .noMatchingSubscribers))])
    }
}

final class OutboundPacketSizeTests: XCTestCase {
    func testMessagesLargerThanTheClientsMaximumPacketSizeAreNotSent() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("sub", properties: [.maximumPacketSize(50)])
        try sub.subscribe("t")
        let pub = try h.client(.v5)
        try pub.connect("pub")
        try pub.publish("t", payload(size: 10))
        try pub.publish("t", payload(size: 200))
        try pub.publish("t", payload(size: 11))
        XCTAssertEqual(try sub.publishes().map(\.payload.readableBytes), [10, 11])
        XCTAssertTrue(sub.isActive)
    }

    func testOversizeQoS1MessageDoesNotBlockTheWindow() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("sub", properties: [.maximumPacketSize(50), .receiveMaximum(1)])
        try sub.subscribe("t", qos: .atLeastOnce)
        let pub = try h.client(.v5)
        try pub.connect("pub")
        try pub.publish("t", payload(size: 200), qos: .atLeastOnce)
        try pub.publish("t", payload(size: 10), qos: .atLeastOnce)
        let got = try sub.publishes()
        XCTAssertEqual(got.map(\.payload.readableBytes), [10])
    }
}

/// Small packets written in one turn of the loop leave as one buffer, in the order written
/// (acks, QoS 1 PUBLISH headers and small payloads coalesce; a shared QoS 0 wire goes between).
final class CoalescedOutputTests: XCTestCase {
    private func outboundBuffers(_ c: TestClient) throws -> [ByteBuffer] {
        c.harness.run()
        var out: [ByteBuffer] = []
        while let b = try c.channel.readOutbound(as: ByteBuffer.self) { out.append(b) }
        return out
    }

    private func batch(_ packets: [Packet], _ version: ProtocolVersion) -> ByteBuffer {
        var all = ByteBuffer()
        for p in packets { var b = p.encoded(version: version); all.writeBuffer(&b) }
        return all
    }

    func testAcksOfOneReadLeaveAsOneBuffer() throws {
        let h = makeHarness()
        let sub = try h.client(.v3_1_1)
        try sub.connect("sub")
        try sub.subscribe("t", qos: .atLeastOnce)
        let pub = try h.client(.v3_1_1)
        try pub.connect("pub")
        _ = try outboundBuffers(pub)
        _ = try outboundBuffers(sub)
        let publishes: [Packet] = (1...3).map {
            .publish(PublishPacket(qos: .atLeastOnce, topic: "t", packetId: UInt16($0), payload: payload("m\($0)")))
        }
        try pub.sendBytes(batch(publishes, .v3_1_1))
        let acks = try outboundBuffers(pub)
        XCTAssertEqual(acks.count, 1)
        var decoder = MQTTDecoder(version: .v3_1_1, strictUTF8: false)
        var all = acks[0]
        var ids: [UInt16] = []
        while let p = try decoder.decode(buffer: &all) {
            if case .puback(let a) = p { ids.append(a.packetId) }
        }
        XCTAssertEqual(ids, [1, 2, 3])
        XCTAssertEqual(all.readableBytes, 0)
        let deliveries = try outboundBuffers(sub)
        XCTAssertEqual(deliveries.count, 1)
        var d = deliveries[0]
        var payloads: [String] = []
        while let p = try decoder.decode(buffer: &d) {
            if case .publish(let m) = p { payloads.append(String(buffer: m.payload)) }
        }
        XCTAssertEqual(payloads, ["m1", "m2", "m3"])
    }

    func testSharedQoS0WireKeepsItsPlaceAmongCoalescedPackets() throws {
        let h = makeHarness()
        let sub = try h.client(.v3_1_1)
        try sub.connect("sub")
        try sub.subscribe("q1", qos: .atLeastOnce)
        try sub.subscribe("q0", qos: .atMostOnce)
        let pub = try h.client(.v3_1_1)
        try pub.connect("pub")
        _ = try sub.packets()
        let big = String(repeating: "x", count: 2_000)
        try pub.sendBytes(batch([
            .publish(PublishPacket(qos: .atLeastOnce, topic: "q1", packetId: 1, payload: payload("a"))),
            .publish(PublishPacket(qos: .atMostOnce, topic: "q0", payload: payload("b"))),
            .publish(PublishPacket(qos: .atLeastOnce, topic: "q1", packetId: 2, payload: payload(big))),
            .publish(PublishPacket(qos: .atLeastOnce, topic: "q1", packetId: 3, payload: payload("c"))),
            .publish(PublishPacket(qos: .atMostOnce, topic: "q0", payload: payload("d"))),
        ], .v3_1_1))
        XCTAssertEqual(try sub.publishes().map { String(buffer: $0.payload) }, ["a", "b", big, "c", "d"])
    }
}
