import MQTTCodec
import NIOCore
import XCTest

/// Encodings checked byte for byte against hand-written hex following the OASIS examples
/// (3.1.1 figures 3.6/3.7, 3.8-3.11; 5.0 figure 3-6 "Variable Header example").
final class ExactBytesTests: XCTestCase {
    private func assertBytes(_ packet: Packet, _ version: ProtocolVersion, _ expected: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        let want = hex(expected)
        let got = Array(packet.encoded(version: version).readableBytesView)
        XCTAssertEqual(hexString(got), hexString(want), "encode", file: file, line: line)
        XCTAssertEqual(try decodeOne(want, version: version), packet, "decode", file: file, line: line)
    }

    func testConnect311SpecVariableHeader() throws {
        // 3.1.1 figure 3.6: 00 04 'MQTT' 04 CE 00 0A
        // CE = user name, password, will QoS 1, will flag, clean session. Keep alive 10.
        let c = ConnectPacket(protocolVersion: .v3_1_1, cleanStart: true, keepAlive: 10, clientId: "c",
                              will: Will(topic: "w", payload: buffer("x"), qos: .atLeastOnce, retain: false),
                              username: "u", password: buffer("p"))
        assertBytes(.connect(c), .v3_1_1, """
            10 19
            00 04 4D 51 54 54 04 CE 00 0A
            00 01 63
            00 01 77
            00 01 78
            00 01 75
            00 01 70
            """)
        // A CONNECT on a fresh decoder (no version yet) is read the same way.
        XCTAssertEqual(try decodeOne(hex("10 19 00 04 4D 51 54 54 04 CE 00 0A 00 01 63 00 01 77 00 01 78 00 01 75 00 01 70"),
                                     version: nil), .connect(c))
    }

    func testConnect311WillRetainQoS2() {
        // flags 0x36 = will retain, will QoS 2, will flag, clean session.
        let c = ConnectPacket(protocolVersion: .v3_1_1, cleanStart: true, keepAlive: 60, clientId: "id",
                              will: Will(topic: "a/b", payload: buffer("z"), qos: .exactlyOnce, retain: true))
        assertBytes(.connect(c), .v3_1_1, """
            10 16
            00 04 4D 51 54 54 04 36 00 3C
            00 02 69 64
            00 03 61 2F 62
            00 01 7A
            """)
    }

    func testConnect31() {
        // 3.1: protocol name "MQIsdp", level 3, clean session.
        let c = ConnectPacket(protocolVersion: .v3_1, cleanStart: true, keepAlive: 60, clientId: "abc")
        assertBytes(.connect(c), .v3_1, "10 11 00 06 4D 51 49 73 64 70 03 02 00 3C 00 03 61 62 63")
    }

    func testConnect5SpecVariableHeader() {
        // 5.0 figure 3-6: 00 04 'MQTT' 05 C2 00 0A 05 11 00 00 00 0A
        // C2 = user name, password, clean start. Keep alive 10. Session expiry 10.
        let c = ConnectPacket(protocolVersion: .v5, cleanStart: true, keepAlive: 10,
                              properties: [.sessionExpiryInterval(10)], clientId: "c", username: "u",
                              password: buffer("p"))
        assertBytes(.connect(c), .v5, """
            10 19
            00 04 4D 51 54 54 05 C2 00 0A
            05 11 00 00 00 0A
            00 01 63
            00 01 75
            00 01 70
            """)
    }

    func testConnect5WillProperties() {
        // flags 0x0E = will QoS 1, will flag, clean start; will properties: will delay 5.
        let c = ConnectPacket(protocolVersion: .v5, cleanStart: true, keepAlive: 0, clientId: "",
                              will: Will(topic: "t", payload: buffer("!"), qos: .atLeastOnce, retain: false,
                                         properties: [.willDelayInterval(5)]))
        assertBytes(.connect(c), .v5, """
            10 19
            00 04 4D 51 54 54 05 0E 00 00
            00
            00 00
            05 18 00 00 00 05
            00 01 74
            00 01 21
            """)
    }

    func testConnAck() {
        assertBytes(.connack(ConnAckPacket()), .v3_1_1, "20 02 00 00")
        assertBytes(.connack(ConnAckPacket(sessionPresent: true)), .v3_1_1, "20 02 01 00")
        assertBytes(.connack(ConnAckPacket()), .v5, "20 03 00 00 00")
        assertBytes(.connack(ConnAckPacket(reasonCode: .badUserNameOrPassword)), .v5, "20 03 00 86 00")
        assertBytes(.connack(ConnAckPacket(sessionPresent: true, properties: [.receiveMaximum(10)])), .v5,
                    "20 06 01 00 03 21 00 0A")
    }

    func testPublish311SpecExample() {
        // 3.1.1 figure 3.11: topic "a/b", packet identifier 10.
        assertBytes(.publish(PublishPacket(qos: .atLeastOnce, topic: "a/b", packetId: 10, payload: buffer("hi"))),
                    .v3_1_1, "32 09 00 03 61 2F 62 00 0A 68 69")
        assertBytes(.publish(PublishPacket(topic: "a/b", payload: ByteBuffer())), .v3_1_1, "30 05 00 03 61 2F 62")
        assertBytes(.publish(PublishPacket(dup: true, qos: .exactlyOnce, retain: true, topic: "a", packetId: 0x102,
                                           payload: buffer("x"))), .v3_1_1, "3D 06 00 01 61 01 02 78")
    }

    func testPublish5() {
        assertBytes(.publish(PublishPacket(topic: "a/b", payload: buffer("hi"))), .v5, "30 08 00 03 61 2F 62 00 68 69")
        assertBytes(.publish(PublishPacket(qos: .atLeastOnce, topic: "", packetId: 1,
                                           properties: [.topicAlias(2), .subscriptionIdentifier(200)],
                                           payload: ByteBuffer())),
                    .v5, "32 0B 00 00 00 01 06 23 00 02 0B C8 01")
    }

    func testPubAcks() {
        assertBytes(.puback(PubAckPacket(packetId: 1)), .v3_1_1, "40 02 00 01")
        assertBytes(.pubrec(PubAckPacket(packetId: 2)), .v3_1_1, "50 02 00 02")
        assertBytes(.pubrel(PubAckPacket(packetId: 3)), .v3_1_1, "62 02 00 03")
        assertBytes(.pubcomp(PubAckPacket(packetId: 4)), .v3_1_1, "70 02 00 04")
        // 5.0: success without properties keeps the 2 byte form (3.4.2.1).
        assertBytes(.puback(PubAckPacket(packetId: 1)), .v5, "40 02 00 01")
        // 5.0 PUBACK with reason code 0x10 (No matching subscribers), no properties.
        assertBytes(.puback(PubAckPacket(packetId: 1, reasonCode: .noMatchingSubscribers)), .v5, "40 03 00 01 10")
        assertBytes(.pubrel(PubAckPacket(packetId: 0xABCD, reasonCode: .packetIdentifierNotFound)), .v5,
                    "62 03 AB CD 92")
        // Reason code with a reason string property.
        assertBytes(.pubrec(PubAckPacket(packetId: 5, reasonCode: .unspecifiedError, properties: [.reasonString("no")])),
                    .v5, "50 09 00 05 80 05 1F 00 02 6E 6F")
        // Success with properties must still carry the 0x00 reason code.
        assertBytes(.pubcomp(PubAckPacket(packetId: 5, properties: [.userProperty("a", "b")])), .v5,
                    "70 0B 00 05 00 07 26 00 01 61 00 01 62")
    }

    func testSubscribe311SpecExample() {
        // 3.1.1 figure 3.22 style: packet id 10, "a/b" QoS 1, "c/d" QoS 2.
        assertBytes(.subscribe(SubscribePacket(packetId: 10, subscriptions: [
            TopicSubscription(filter: "a/b", qos: .atLeastOnce), TopicSubscription(filter: "c/d", qos: .exactlyOnce),
        ])), .v3_1_1, "82 0E 00 0A 00 03 61 2F 62 01 00 03 63 2F 64 02")
    }

    func testSubAckSpecExample() {
        // 3.1.1 figure 3.26: QoS 0, QoS 2, failure.
        assertBytes(.suback(SubAckPacket(packetId: 10, reasonCodes: [.grantedQoS0, .grantedQoS2, .unspecifiedError])),
                    .v3_1_1, "90 05 00 0A 00 02 80")
        assertBytes(.suback(SubAckPacket(packetId: 10, reasonCodes: [.grantedQoS1])), .v5, "90 04 00 0A 00 01")
    }

    func testUnsubscribeSpecExample() {
        // 3.1.1 figure 3.30: packet id 10, "a/b", "c/d".
        assertBytes(.unsubscribe(UnsubscribePacket(packetId: 10, filters: ["a/b", "c/d"])), .v3_1_1,
                    "A2 0C 00 0A 00 03 61 2F 62 00 03 63 2F 64")
        assertBytes(.unsubscribe(UnsubscribePacket(packetId: 10, filters: ["a/b"])), .v5,
                    "A2 08 00 0A 00 00 03 61 2F 62")
    }

    func testUnsubAck() {
        assertBytes(.unsuback(UnsubAckPacket(packetId: 10)), .v3_1_1, "B0 02 00 0A")
        assertBytes(.unsuback(UnsubAckPacket(packetId: 10, reasonCodes: [.success, .noSubscriptionExisted])), .v5,
                    "B0 05 00 0A 00 00 11")
    }

    func testPingAndDisconnect() {
        for v in [ProtocolVersion.v3_1, .v3_1_1, .v5] {
            assertBytes(.pingreq, v, "C0 00")
            assertBytes(.pingresp, v, "D0 00")
            assertBytes(.disconnect(DisconnectPacket()), v, "E0 00")
        }
        assertBytes(.disconnect(DisconnectPacket(reasonCode: .sessionTakenOver)), .v5, "E0 01 8E")
        assertBytes(.disconnect(DisconnectPacket(reasonCode: .serverShuttingDown, properties: [.reasonString("bye")])),
                    .v5, "E0 08 8B 06 1F 00 03 62 79 65")
    }

    func testDisconnect5WithEmptyPropertyBlockDecodes() throws {
        XCTAssertEqual(try decodeOne(hex("E0 02 00 00"), version: .v5), .disconnect(DisconnectPacket()))
        XCTAssertEqual(try decodeOne(hex("E0 02 04 00"), version: .v5),
                       .disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage)))
    }

    func testAuth() {
        assertBytes(.auth(AuthPacket()), .v5, "F0 00")
        assertBytes(.auth(AuthPacket(reasonCode: .continueAuthentication, properties: [.authenticationMethod("m")])),
                    .v5, "F0 06 18 04 15 00 01 6D")
    }
}
