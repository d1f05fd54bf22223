import MQTTCodec
import NIOCore
import XCTest

/// A PUBLISH that repeats the previous PUBLISH's topic shares its `String`, and keeps the
/// whole packet as received; neither changes what is decoded or what is refused.
final class RepeatedTopicTests: XCTestCase {
    private func encoded(_ p: Packet, _ version: ProtocolVersion = .v3_1_1) -> ByteBuffer {
        p.encoded(version: version)
    }

    private func publish(_ topic: String, qos: QoS = .atMostOnce, payload: String = "x") -> Packet {
        .publish(PublishPacket(qos: qos, topic: topic, packetId: qos == .atMostOnce ? nil : 1, payload: buffer(payload)))
    }

    func testRepeatedTopicDecodesTheSameAndKeepsTheReceivedPacket() throws {
        var d = MQTTDecoder(version: .v3_1_1)
        let long = "sensors/building-7/floor-3/temperature"
        var stream = ByteBuffer()
        var retained = PublishPacket(topic: long, payload: buffer("r"))
        retained.retain = true
        for p in [publish(long), publish(long, qos: .atLeastOnce, payload: "y"), publish("other/topic"), .publish(retained), publish(long)] {
            var b = encoded(p)
            stream.writeBuffer(&b)
        }
        var topics: [String] = []
        while let packet = try d.decode(buffer: &stream) {
            guard case .publish(let p) = packet else { return XCTFail("not a PUBLISH: \(packet)") }
            topics.append(p.topic)
            if p.qos == .atMostOnce && !p.retain {
                // The received bytes are the packet, fixed header included.
                XCTAssertEqual(p.received.map { Array($0.readableBytesView) }, Array(encoded(packet).readableBytesView))
            } else {
                // Only a plain QoS 0 PUBLISH is forwarded as received: others do not keep them.
                XCTAssertNil(p.received)
            }
        }
        XCTAssertEqual(topics, [long, long, "other/topic", long, long])
    }

    func testSameLengthDifferentTopicIsStillValidated() throws {
        var d = MQTTDecoder(version: .v3_1_1)
        var first = encoded(publish("a/b/c"))
        XCTAssertNotNil(try d.decode(buffer: &first))
        // Same length as "a/b/c", but a wildcard in a topic name: malformed, not taken as a repeat.
        var bad = ByteBuffer(bytes: [0x30, 0x08] + str("a/+/c") + [0x78])
        XCTAssertThrowsError(try d.decode(buffer: &bad))
    }

    func testStrictControlCharactersStillRefusedAfterARepeat() throws {
        var d = MQTTDecoder(version: .v3_1_1, strictUTF8: true)
        var first = encoded(publish("t/1"))
        var again = encoded(publish("t/1"))
        XCTAssertNotNil(try d.decode(buffer: &first))
        XCTAssertNotNil(try d.decode(buffer: &again))
        var control = ByteBuffer(bytes: [0x30, 0x06] + str("t/\u{01}") + [0x78])
        XCTAssertThrowsError(try d.decode(buffer: &control))
    }

    func testReceivedIsNotPartOfEquality() throws {
        var d = MQTTDecoder(version: .v3_1_1)
        let packet = publish("a/b")
        var b = encoded(packet)
        XCTAssertEqual(try d.decode(buffer: &b), packet)
    }
}
