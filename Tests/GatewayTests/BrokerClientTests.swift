import GatewayKit
import MQTTCodec
import NIOCore
import XCTest

/// The MQTT client side of a gateway session: packet ids, QoS handshakes both ways, and the
/// broker's receive maximum holding publishes back.
final class BrokerClientTests: XCTestCase {
    private func connack(receiveMaximum: UInt16? = nil) -> Packet {
        var props = Properties()
        if let r = receiveMaximum { props.items.append(.receiveMaximum(r)) }
        return .connack(ConnAckPacket(properties: props))
    }

    func testConnectIsMQTT5WithReceiveMaximum() {
        guard case .connect(let c) = BrokerClient.connect(clientId: "c", username: "u", password: Array("p".utf8),
                                                          keepAlive: 0, receiveMaximum: 7) else { return XCTFail() }
        XCTAssertEqual(c.protocolVersion, .v5)
        XCTAssertEqual(c.properties.receiveMaximum, 7)
        XCTAssertEqual(c.username, "u")
    }

    func testRefusedConnackCarriesTheReason() {
        var b = BrokerClient()
        let (events, _) = b.receive(.connack(ConnAckPacket(reasonCode: .badUserNameOrPassword)))
        XCTAssertEqual(events, [.refused(.badUserNameOrPassword, nil)])
        XCTAssertFalse(b.isConnected)
    }

    func testPublishesWaitForTheReceiveMaximumAndDrainOnAcks() {
        var b = BrokerClient()
        // Before CONNACK everything at QoS 1 waits.
        XCTAssertNil(b.publish(topic: "t", payload: ByteBuffer(), qos: .atLeastOnce, token: 1))
        let (events, replies) = b.receive(connack(receiveMaximum: 2))
        XCTAssertEqual(events, [.connected(sessionPresent: false)])
        XCTAssertEqual(replies.count, 1)
        XCTAssertNotNil(b.publish(topic: "t", payload: ByteBuffer(), qos: .atLeastOnce, token: 2))
        XCTAssertNil(b.publish(topic: "t", payload: ByteBuffer(), qos: .atLeastOnce, token: 3))
        XCTAssertEqual(b.backlog, 1)
        // QoS 0 never waits.
        XCTAssertNotNil(b.publish(topic: "t", payload: ByteBuffer(), qos: .atMostOnce))
        guard case .publish(let first) = replies[0] else { return XCTFail() }
        let (e2, r2) = b.receive(.puback(PubAckPacket(packetId: first.packetId!)))
        XCTAssertEqual(e2, [.published(1, .success)])
        XCTAssertEqual(r2.count, 1, "the waiting publish goes out")
        XCTAssertEqual(b.backlog, 0)
    }

    func testQoS2OutboundHandshake() {
        var b = BrokerClient()
        _ = b.receive(connack())
        guard case .publish(let p) = b.publish(topic: "t", payload: ByteBuffer(), qos: .exactlyOnce, token: 9) else {
            return XCTFail()
        }
        let (e1, r1) = b.receive(.pubrec(PubAckPacket(packetId: p.packetId!)))
        XCTAssertEqual(e1, [])
        XCTAssertEqual(r1, [.pubrel(PubAckPacket(packetId: p.packetId!))])
        let (e2, _) = b.receive(.pubcomp(PubAckPacket(packetId: p.packetId!)))
        XCTAssertEqual(e2, [.published(9, .success)])
    }

    func testQoS2InboundIsDeliveredOnce() {
        var b = BrokerClient()
        _ = b.receive(connack())
        let p = PublishPacket(qos: .exactlyOnce, topic: "t", packetId: 4, payload: ByteBuffer(string: "x"))
        let (e1, _) = b.receive(.publish(p))
        XCTAssertEqual(e1, [.message(p)])
        XCTAssertEqual(b.acknowledge(p), .pubrec(PubAckPacket(packetId: 4)))
        var dup = p
        dup.dup = true
        let (e2, r2) = b.receive(.publish(dup))
        XCTAssertEqual(e2, [], "a retransmission is not delivered again")
        XCTAssertEqual(r2, [.pubrec(PubAckPacket(packetId: 4))])
        let (_, r3) = b.receive(.pubrel(PubAckPacket(packetId: 4)))
        XCTAssertEqual(r3, [.pubcomp(PubAckPacket(packetId: 4))])
    }

    func testAcksForUnknownIdsAreViolations() {
        var b = BrokerClient()
        _ = b.receive(connack())
        XCTAssertEqual(b.receive(.puback(PubAckPacket(packetId: 77))).events, [.violation("PUBACK for unknown packet id 77")])
        XCTAssertEqual(b.receive(.suback(SubAckPacket(packetId: 5, reasonCodes: [.grantedQoS1]))).events.count, 1)
        XCTAssertEqual(b.receive(.pingreq).events, [.violation("the broker sent pingreq")])
    }

    func testPacketIdsSkipThoseInUse() {
        var b = BrokerClient()
        _ = b.receive(connack())
        var ids = Set<UInt16>()
        for i in 0..<100 {
            guard case .publish(let p) = b.publish(topic: "t", payload: ByteBuffer(), qos: .atLeastOnce, token: UInt64(i)) else {
                return XCTFail()
            }
            ids.insert(p.packetId!)
            if case .subscribe(let s) = b.subscribe([TopicSubscription(filter: "f", qos: .atLeastOnce)], token: 1000) {
                ids.insert(s.packetId)
            }
        }
        XCTAssertEqual(ids.count, 200)
    }
}
