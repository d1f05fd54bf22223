import GatewayMQTTSN
import NIOCore
import XCTest

/// The MQTT-SN 1.2 datagram codec: every message round trips, both length forms, and hostile
/// datagrams (length mismatches, unknown types, truncations) are refused, never trapped on.
final class SNMessageTests: XCTestCase {
    func testRoundTrips() throws {
        let all: [SNMessage] = [
            .advertise(gatewayId: 3, duration: 900), .searchGateway(radius: 1), .gatewayInfo(gatewayId: 3, address: []),
            .connect(flags: SNFlags(will: true, cleanSession: true), duration: 30, clientId: "dev-1"), .connack(.accepted),
            .willTopicRequest, .willTopic(flags: SNFlags(qos: 1, retain: true), topic: "w/t"), .willTopic(flags: SNFlags(), topic: ""),
            .willMessageRequest, .willMessage([1, 2]), .register(topicId: 0, msgId: 7, topicName: "a/b"),
            .regack(topicId: 1, msgId: 7, .accepted),
            .publish(flags: SNFlags(qos: 2, topicIdType: .predefined), topicId: 5, msgId: 9, data: ByteBuffer(string: "x")),
            .puback(topicId: 1, msgId: 2, .invalidTopicId), .pubcomp(msgId: 1), .pubrec(msgId: 2), .pubrel(msgId: 3),
            .subscribe(flags: SNFlags(qos: 1), msgId: 4, topic: .name("a/+")),
            .subscribe(flags: SNFlags(topicIdType: .predefined), msgId: 4, topic: .id(9)),
            .subscribe(flags: SNFlags(topicIdType: .short), msgId: 4, topic: .name("ab")),
            .suback(flags: SNFlags(qos: 1), topicId: 1, msgId: 4, .accepted), .unsubscribe(flags: SNFlags(), msgId: 5, topic: .name("a")),
            .unsuback(msgId: 5), .pingreq(clientId: nil), .pingreq(clientId: "dev-1"), .pingresp, .disconnect(duration: nil),
            .disconnect(duration: 60), .willTopicUpdate(flags: SNFlags(qos: 1), topic: "w"), .willTopicResponse(.accepted),
            .willMessageUpdate([9]), .willMessageResponse(.accepted),
        ]
        for m in all {
            XCTAssertEqual(try SNMessage.decode(m.encoded()), m, "\(m)")
        }
    }

    /// fuzz-gateways: WILLTOPIC / WILLTOPICUPD with a flags byte and no topic name is the empty
    /// form ("no will"), so it encodes and decodes to itself.
    func testWillTopicWithFlagsAndNoTopicIsTheEmptyForm() throws {
        for type: UInt8 in [0x07, 0x1A] {
            let m = try SNMessage.decode(ByteBuffer(bytes: [0x03, type, 0x08]))
            XCTAssertEqual(m, type == 0x07 ? .willTopic(flags: SNFlags(), topic: "") : .willTopicUpdate(flags: SNFlags(), topic: ""))
            XCTAssertEqual(try SNMessage.decode(m.encoded()), m)
        }
    }

    func testThreeByteLengthForLargeMessages() throws {
        let big = SNMessage.publish(flags: SNFlags(), topicId: 1, msgId: 0, data: ByteBuffer(repeating: 7, count: 600))
        let bytes = big.encoded()
        XCTAssertEqual(bytes.getInteger(at: 0, as: UInt8.self), 0x01)
        XCTAssertEqual(bytes.getInteger(at: 1, as: UInt16.self), UInt16(bytes.readableBytes))
        XCTAssertEqual(try SNMessage.decode(bytes), big)
        // A short message may also use the 3-byte form.
        XCTAssertEqual(try SNMessage.decode(ByteBuffer(bytes: [0x01, 0x00, 0x04, 0x17])), .pingresp)
    }

    func testHostileDatagramsAreRefused() {
        let hostile: [[UInt8]] = [
            [], [0x00], [0x01], [0x01, 0x00], [0x01, 0x00, 0x03, 0x17], [0x02], [0x03, 0x17], [0x05, 0x17],
            [0x02, 0x03],  // reserved type
            [0x02, 0xFE],  // encapsulated (forwarder): not served
            [0x04, 0x0C, 0x00, 0x00],  // truncated PUBLISH
            [0x06, 0x04, 0x00, 0x02, 0x00, 0x05],  // CONNECT with protocol id 2
            [0x05, 0x12, 0x03, 0x00, 0x01],  // SUBSCRIBE with topic id type 3
            [0x03, 0x16, 0xFF],  // PINGREQ client id not UTF-8
            [0x04, 0x18, 0x00, 0x01, 0x02],  // DISCONNECT with 3 bytes
            [0x03, 0x05, 0x09],  // CONNACK with an unknown return code
        ]
        for h in hostile {
            XCTAssertThrowsError(try SNMessage.decode(ByteBuffer(bytes: h)), "\(h)")
        }
    }

    func testFlagsByte() throws {
        let f = SNFlags(dup: true, qos: -1, retain: true, will: false, cleanSession: true, topicIdType: .short)
        XCTAssertEqual(f.byte, 0x80 | 0x60 | 0x10 | 0x04 | 0x02)
        XCTAssertEqual(try SNFlags(byte: f.byte), f)
    }

    func testRateLimiterPerAddress() {
        var r = RateLimiter(rate: 10, maxAddresses: 4)
        var allowed = 0
        for _ in 0..<100 where r.allow("a", now: 0) { allowed += 1 }
        XCTAssertEqual(allowed, 20, "a burst of twice the rate")
        XCTAssertTrue(r.allow("b", now: 0), "another address has its own bucket")
        XCTAssertTrue(r.allow("a", now: 200_000_000), "refilled over time")
    }
}
