import MQTTCodec
import NIOCore
import XCTest

/// Rules found missing by byte-by-byte checks against outside suites (issue 10): zero-length
/// topic filters (MQTT-4.7.3-1) and control characters under `strict_utf8`.
final class ConformanceGapTests: XCTestCase {
    // MARK: Zero-length topic filters

    func testSubscribeWithZeroLengthFilterIsMalformed() {
        // SUBSCRIBE id 1, filter "" QoS 0.
        for v in [ProtocolVersion.v3_1, .v3_1_1] {
            assertDecodeError(hex("82 05 00 01 00 00 00"), version: v, .malformed)
        }
        // 5.0: an empty property block first.
        assertDecodeError(hex("82 06 00 01 00 00 00 00"), version: .v5, .malformed)
        // Also when a valid filter comes first.
        assertDecodeError(hex("82 09 00 01 00 01 61 00 00 00 00"), version: .v3_1_1, .malformed)
    }

    func testUnsubscribeWithZeroLengthFilterIsMalformed() {
        assertDecodeError(hex("A2 04 00 01 00 00"), version: .v3_1_1, .malformed)
        assertDecodeError(hex("A2 05 00 01 00 00 00"), version: .v5, .malformed)
        assertDecodeError(hex("A2 07 00 01 00 01 61 00 00"), version: .v3_1_1, .malformed)
    }

    // MARK: strict_utf8

    /// A string field holding `bytes`.
    private func field(_ bytes: [UInt8]) -> [UInt8] { [UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes }

    private func publish(topic: [UInt8]) -> [UInt8] { packet(0x30, field(topic) + [0x78]) }
    private func subscribe(filter: [UInt8]) -> [UInt8] { packet(0x82, [0x00, 0x01] + field(filter) + [0x00]) }
    private func unsubscribe(filter: [UInt8]) -> [UInt8] { packet(0xA2, [0x00, 0x01] + field(filter)) }
    private func connect(clientId: [UInt8], username: [UInt8]? = nil, willTopic: [UInt8]? = nil) -> [UInt8] {
        var flags: UInt8 = 0x02
        if username != nil { flags |= 0x80 }
        if willTopic != nil { flags |= 0x04 }
        var body: [UInt8] = [0x00, 0x04] + Array("MQTT".utf8) + [0x04, flags, 0x00, 0x3C] + field(clientId)
        if let willTopic { body += field(willTopic) + [0x00, 0x00] }
        if let username { body += field(username) }
        return packet(0x10, body)
    }

    private static let controls: [[UInt8]] = [
        [0x01], [0x09], [0x0A], [0x1F], [0x7F], [0xC2, 0x80], [0xC2, 0x85], [0xC2, 0x9F],
    ]

    func testControlCharactersAreMalformedWhenStrict() {
        for c in Self.controls {
            let bad = Array("a/".utf8) + c + Array("b".utf8)
            assertDecodeError(publish(topic: bad), version: .v3_1_1, .malformed)
            assertDecodeError(subscribe(filter: bad), version: .v3_1_1, .malformed)
            assertDecodeError(unsubscribe(filter: bad), version: .v3_1_1, .malformed)
            assertDecodeError(connect(clientId: bad), version: nil, .malformed)
            assertDecodeError(connect(clientId: Array("ok".utf8), username: bad), version: nil, .malformed)
            assertDecodeError(connect(clientId: Array("ok".utf8), willTopic: bad), version: nil, .malformed)
        }
    }

    func testControlCharactersPassWhenNotStrict() throws {
        for c in Self.controls {
            let bad = Array("a/".utf8) + c + Array("b".utf8)
            var decoder = MQTTDecoder(version: .v3_1_1, strictUTF8: false)
            var buf = ByteBuffer(bytes: publish(topic: bad) + subscribe(filter: bad))
            guard case .publish(let p) = try decoder.decode(buffer: &buf) else { return XCTFail("no PUBLISH") }
            XCTAssertEqual(Array(p.topic.utf8), bad)
            guard case .subscribe(let s) = try decoder.decode(buffer: &buf) else { return XCTFail("no SUBSCRIBE") }
            XCTAssertEqual(Array(s.subscriptions[0].filter.utf8), bad)
        }
    }

    func testCharactersNextToTheControlRangesAreAccepted() throws {
        // U+0020, U+007E, U+00A0, U+00C2 ("Â" is C3 82), U+0100 and a 4-byte sequence.
        let fine: [[UInt8]] = [[0x20], [0x7E], [0xC2, 0xA0], [0xC3, 0x82], [0xC4, 0x80], [0xF0, 0x9F, 0x98, 0x80]]
        for c in fine {
            let topic = Array("a/".utf8) + c
            guard case .publish(let p) = try decodeOne(publish(topic: topic), version: .v3_1_1) else {
                return XCTFail("no PUBLISH for \(c)")
            }
            XCTAssertEqual(Array(p.topic.utf8), topic)
        }
    }

    func testPayloadsAndOtherStringsMayHoldControlCharacters() throws {
        // The rule covers names: a 5.0 reason string or user property with a tab still decodes.
        let up: [UInt8] = [0x26] + field(Array("k\t".utf8)) + field(Array("v\n".utf8))
        let bytes = packet(0x30, field(Array("t".utf8)) + props(up) + [0x01, 0x02])
        guard case .publish(let p) = try decodeOne(bytes, version: .v5) else { return XCTFail("no PUBLISH") }
        XCTAssertEqual(p.properties.items, [.userProperty("k\t", "v\n")])
    }

    func testStrictConnectKeepsItsProtocolLevelForTheAnswer() throws {
        // A 5.0 CONNECT refused for its client id still tells the broker it was 5.0 (CONNACK 0x81).
        let body: [UInt8] = [0x00, 0x04] + Array("MQTT".utf8) + [0x05, 0x02, 0x00, 0x3C, 0x00] + field([0x61, 0x01])
        var d = MQTTPacketDecoder(maxPacketSize: 1 << 20)
        var buf = ByteBuffer(bytes: packet(0x10, body))
        XCTAssertThrowsError(try d.decode(buffer: &buf)) { error in
            guard let e = error as? ConnectDecodingError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.version, .v5)
            XCTAssertEqual(e.underlying.reasonCode, .malformedPacket)
        }
    }
}
