import MQTTCodec
import NIOCore
import XCTest

/// Byte streams that can never be valid: fixed header, flags, lengths, PUBLISH, SUBSCRIBE,
/// UNSUBSCRIBE, acks, strings. (CONNECT and properties have their own files.)
final class MalformedTests: XCTestCase {
    static let v3: [ProtocolVersion] = [.v3_1, .v3_1_1]
    static let all: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]

    func testReasonCodeMapping() {
        XCTAssertEqual(MQTTCodecError.malformed("x").reasonCode.rawValue, 0x81)
        XCTAssertEqual(MQTTCodecError.protocolError("x").reasonCode.rawValue, 0x82)
        XCTAssertEqual(MQTTCodecError.packetTooLarge(size: 2, limit: 1).reasonCode.rawValue, 0x95)
        XCTAssertEqual(MQTTCodecError.topicNameInvalid("x").reasonCode.rawValue, 0x90)
        XCTAssertEqual(MQTTCodecError.topicAliasInvalid("x").reasonCode.rawValue, 0x94)
        XCTAssertEqual(MQTTCodecError.unsupportedProtocolVersion(6).reasonCode.rawValue, 0x84)
        XCTAssertEqual(MQTTCodecError.unknownProtocolName("x").reasonCode.rawValue, 0x84)
        XCTAssertFalse(MQTTCodecError.malformed("boom").description.isEmpty)
    }

    // MARK: Fixed header

    func testRemainingLengthOfFiveBytes() {
        for v in Self.all {
            assertDecodeError(hex("30 FF FF FF FF 01"), version: v, .malformed)
            // The fifth byte need not even have arrived: four continuation bytes are enough.
            assertDecodeError(hex("30 80 80 80 80"), version: v, .malformed)
        }
    }

    func testMaximumRemainingLengthRejectedBeforeBodyIsBuffered() {
        // 10 FF FF FF 7F declares 268,435,455 bytes; nothing follows. With a 1 MiB limit the
        // decoder must refuse now rather than wait for a quarter gigabyte.
        let e = assertDecodeError(hex("10 FF FF FF 7F"), version: nil, maxPacketSize: 1 << 20, .packetTooLarge)
        XCTAssertEqual(e, .packetTooLarge(size: 268_435_460, limit: 1 << 20))
        for v in Self.all {
            assertDecodeError(hex("30 FF FF FF 7F"), version: v, maxPacketSize: 1 << 20, .packetTooLarge)
        }
    }

    func testMaximumRemainingLengthWaitsWhenAllowed() throws {
        var decoder = MQTTDecoder(version: .v5)
        var b = ByteBuffer(bytes: hex("30 FF FF FF 7F 00 01 61"))
        XCTAssertNil(try decoder.decode(buffer: &b))
    }

    func testReservedPacketTypeZero() {
        for v in Self.all {
            assertDecodeError(hex("00 00"), version: v, .malformed)
            assertDecodeError(hex("0F 02 00 01"), version: v, .malformed)
        }
        assertDecodeError(hex("00 00"), version: nil, .malformed)
    }

    func testReservedFlagBits() {
        let cases: [[UInt8]] = [
            hex("11 0C 00 04 4D 51 54 54 04 02 00 3C 00 00"), // CONNECT flags 1
            hex("21 02 00 00"),                                 // CONNACK
            hex("42 02 00 01"),                                 // PUBACK with PUBREL's flags
            hex("51 02 00 01"),                                 // PUBREC
            hex("60 02 00 01"),                                 // PUBREL flags 0 (must be 2)
            hex("63 02 00 01"),                                 // PUBREL flags 3
            hex("72 02 00 01"),                                 // PUBCOMP
            hex("80 06 00 01 00 01 61 00"),                     // SUBSCRIBE flags 0 (must be 2)
            hex("8A 06 00 01 00 01 61 00"),                     // SUBSCRIBE flags 0xA
            hex("91 03 00 01 00"),                              // SUBACK
            hex("A0 05 00 01 00 01 61"),                        // UNSUBSCRIBE flags 0
            hex("A3 05 00 01 00 01 61"),                        // UNSUBSCRIBE flags 3
            hex("B8 02 00 01"),                                 // UNSUBACK
            hex("C1 00"), hex("C8 00"),                         // PINGREQ
            hex("D2 00"),                                       // PINGRESP
            hex("E4 00"),                                       // DISCONNECT
        ]
        for bytes in cases {
            for v in Self.all { assertDecodeError(bytes, version: v, .malformed) }
        }
        assertDecodeError(hex("F1 00"), version: .v5, .malformed) // AUTH
    }

    func testTrailingBytes() {
        for v in Self.all {
            assertDecodeError(hex("C0 01 00"), version: v, .malformed)        // PINGREQ with a body
            assertDecodeError(hex("D0 02 00 00"), version: v, .malformed)     // PINGRESP with a body
            // CONNACK with extra bytes (in 5.0 the first extra byte is read as property length 0).
            assertDecodeError(hex("20 05 00 00 00 00 00"), version: v, .malformed)
        }
        // CONNECT with a byte after the client id, in each version.
        assertDecodeError(packet(0x10, str("MQIsdp") + [3, 0x02, 0, 60] + str("c") + [0x00]), version: nil, .malformed)
        assertDecodeError(packet(0x10, str("MQTT") + [4, 0x02, 0, 60] + str("c") + [0x00]), version: nil, .malformed)
        assertDecodeError(packet(0x10, str("MQTT") + [5, 0x02, 0, 60, 0] + str("c") + [0x00]), version: nil, .malformed)
        for v in Self.v3 {
            assertDecodeError(hex("40 03 00 01 00"), version: v, .malformed)  // PUBACK 3.x is exactly 2 bytes
            assertDecodeError(hex("62 03 00 01 00"), version: v, .malformed)
            assertDecodeError(hex("B0 03 00 01 00"), version: v, .malformed)  // UNSUBACK
            assertDecodeError(hex("E0 01 00"), version: v, .malformed)        // DISCONNECT 3.x has no body
        }
        assertDecodeError(hex("40 05 00 01 00 00 FF"), version: .v5, .malformed)
        assertDecodeError(hex("E0 03 00 00 FF"), version: .v5, .malformed)
        assertDecodeError(hex("F0 03 00 00 FF"), version: .v5, .malformed)
    }

    func testDeclaredLengthShorterThanFields() {
        for v in Self.all {
            // PUBLISH whose topic claims 5 bytes but the body holds 1.
            assertDecodeError(hex("30 03 00 05 61"), version: v, .malformed)
            // QoS 1 PUBLISH with no room for the packet identifier.
            assertDecodeError(hex("32 03 00 01 61"), version: v, .malformed)
            // PUBACK with only one byte of packet identifier.
            assertDecodeError(hex("40 01 00"), version: v, .malformed)
            // SUBSCRIBE whose filter is cut off / whose options byte is missing.
            assertDecodeError(hex("82 05 00 01 00 05 61"), version: v, .malformed)
            assertDecodeError(packet(0x82, [0, 1] + (v == .v5 ? [0] : []) + str("a/b")), version: v, .malformed)
            // UNSUBSCRIBE whose filter is cut off.
            assertDecodeError(packet(0xA2, [0, 1] + (v == .v5 ? [0] : []) + [0, 9, 0x61]), version: v, .malformed)
            // CONNACK with one byte.
            assertDecodeError(hex("20 01 00"), version: v, .malformed)
        }
        // CONNECT truncated inside the client identifier, the will, the username and the password.
        let head = str("MQTT") + [4]
        assertDecodeError(packet(0x10, head + [0x02, 0, 60] + [0, 5, 0x61]), version: nil, .malformed)
        assertDecodeError(packet(0x10, head + [0x06, 0, 60] + str("c") + str("w")), version: nil, .malformed)
        assertDecodeError(packet(0x10, head + [0x82, 0, 60] + str("c")), version: nil, .malformed)
        assertDecodeError(packet(0x10, head + [0xC2, 0, 60] + str("c") + str("u") + [0, 4, 1]), version: nil, .malformed)
        // 5.0 property length running past the end of the packet.
        assertDecodeError(hex("30 06 00 01 61 05 02 00"), version: .v5, .malformed)
    }

    // MARK: PUBLISH

    func testPublishQoS3() {
        for v in Self.all {
            assertDecodeError(hex("36 05 00 01 61 00 01"), version: v, .malformed)
            assertDecodeError(hex("3F 05 00 01 61 00 01"), version: v, .malformed)
        }
    }

    func testPublishQoS0WithDup() {
        for v in Self.all {
            assertDecodeError(packet(0x38, str("a") + (v == .v5 ? [0] : [])), version: v, .malformed)
            assertDecodeError(packet(0x39, str("a") + (v == .v5 ? [0] : [])), version: v, .malformed)
        }
    }

    func testPublishZeroLengthTopic() {
        for v in Self.v3 {
            assertDecodeError(hex("30 02 00 00"), version: v, .protocolError)
            assertDecodeError(hex("32 04 00 00 00 01"), version: v, .protocolError)
        }
        // 5.0 without a topic alias; with other properties but no alias.
        assertDecodeError(hex("30 03 00 00 00"), version: .v5, .protocolError)
        assertDecodeError(hex("30 05 00 00 02 01 01"), version: .v5, .protocolError)
    }

    func testPublishWildcardTopic() {
        for v in Self.all {
            let p = v == .v5 ? [UInt8(0)] : []
            for topic in ["a/+", "a/#", "#", "+", "a+b", "sport/tennis#"] {
                assertDecodeError(packet(0x30, str(topic) + p), version: v, .topicNameInvalid)
                assertDecodeError(packet(0x32, str(topic) + [0, 1] + p), version: v, .topicNameInvalid)
            }
        }
        // Even when a topic alias is present, a non-empty topic must be valid.
        assertDecodeError(packet(0x30, str("a/#") + props([0x23, 0, 1])), version: .v5, .topicNameInvalid)
    }

    func testPublishPacketIdZero() {
        for v in Self.all {
            let p = v == .v5 ? [UInt8(0)] : []
            assertDecodeError(packet(0x32, str("a") + [0, 0] + p), version: v, .protocolError)
            assertDecodeError(packet(0x34, str("a") + [0, 0] + p), version: v, .protocolError)
        }
    }

    // MARK: UTF-8

    func testInvalidUTF8InTopic() {
        let bad: [[UInt8]] = [
            [0xC3, 0x28],             // invalid continuation
            [0xED, 0xA0, 0x80],       // UTF-16 surrogate U+D800
            [0xED, 0xBF, 0xBF],       // surrogate U+DFFF
            [0xC0, 0x80],             // overlong U+0000
            [0xE0, 0x80, 0xAF],       // overlong '/'
            [0xF4, 0x90, 0x80, 0x80], // beyond U+10FFFF
            [0x61, 0xFF],             // 0xFF never appears
            [0x61, 0xE2, 0x82],       // truncated sequence
        ]
        for v in Self.all {
            let p = v == .v5 ? [UInt8(0)] : []
            for raw in bad {
                assertDecodeError(packet(0x30, lenPrefixed(raw) + p), version: v, .malformed)
            }
            // U+0000 in the middle of a topic.
            assertDecodeError(packet(0x30, lenPrefixed([0x61, 0x00, 0x62]) + p), version: v, .malformed)
        }
    }

    func testInvalidUTF8InFiltersAndProperties() {
        for v in Self.all {
            let p = v == .v5 ? [UInt8(0)] : []
            assertDecodeError(packet(0x82, [0, 1] + p + lenPrefixed([0xED, 0xA0, 0x80]) + [0]), version: v, .malformed)
            assertDecodeError(packet(0xA2, [0, 1] + p + lenPrefixed([0x61, 0x00])), version: v, .malformed)
        }
        // User property key with U+0000; content type with a surrogate.
        assertDecodeError(packet(0x30, str("t") + props([0x26] + lenPrefixed([0]) + str("v"))), version: .v5, .malformed)
        assertDecodeError(packet(0x30, str("t") + props([0x03] + lenPrefixed([0xED, 0xA0, 0x80]))), version: .v5,
                          .malformed)
    }

    func testValidMultiByteUTF8Accepted() throws {
        let topic = "ä/€/𝄞/中"
        let p = try decodeOne(packet(0x30, str(topic)), version: .v3_1_1)
        XCTAssertEqual(p, .publish(PublishPacket(topic: topic, payload: ByteBuffer())))
    }

    // MARK: SUBSCRIBE / UNSUBSCRIBE / acks

    func testSubscribePacketIdZero() {
        for v in Self.all {
            assertDecodeError(packet(0x82, [0, 0] + (v == .v5 ? [0] : []) + str("a") + [0]), version: v, .protocolError)
            assertDecodeError(packet(0xA2, [0, 0] + (v == .v5 ? [0] : []) + str("a")), version: v, .protocolError)
        }
    }

    func testAckPacketIdZero() {
        for v in Self.all {
            assertDecodeError(hex("40 02 00 00"), version: v, .protocolError)
            assertDecodeError(hex("50 02 00 00"), version: v, .protocolError)
            assertDecodeError(hex("62 02 00 00"), version: v, .protocolError)
            assertDecodeError(hex("70 02 00 00"), version: v, .protocolError)
        }
    }

    func testSubscribeWithoutFilters() {
        for v in Self.v3 { assertDecodeError(hex("82 02 00 01"), version: v, .protocolError) }
        assertDecodeError(hex("82 03 00 01 00"), version: .v5, .protocolError)
        assertDecodeError(hex("82 05 00 01 02 26 00"), version: .v5, .malformed) // cut property, not empty payload
    }

    func testUnsubscribeWithoutFilters() {
        for v in Self.v3 { assertDecodeError(hex("A2 02 00 01"), version: v, .protocolError) }
        assertDecodeError(hex("A2 03 00 01 00"), version: .v5, .protocolError)
    }

    func testSubscriptionOptionsReservedBits() {
        // 5.0: bits 6 and 7 reserved.
        for o: UInt8 in [0x40, 0x80, 0xC1] {
            assertDecodeError(packet(0x82, [0, 1, 0] + str("a") + [o]), version: .v5, .malformed)
        }
        // 3.x: everything above the QoS bits is reserved.
        for v in Self.v3 {
            for o: UInt8 in [0x04, 0x08, 0x10, 0x20, 0x80] {
                assertDecodeError(packet(0x82, [0, 1] + str("a") + [o]), version: v, .malformed)
            }
        }
    }

    func testRetainHandling3() {
        assertDecodeError(packet(0x82, [0, 1, 0] + str("a") + [0x30]), version: .v5, .protocolError)
        assertDecodeError(packet(0x82, [0, 1, 0] + str("a") + [0x01] + str("b") + [0x31]), version: .v5, .protocolError)
    }

    func testSubscriptionQoS3() {
        for v in Self.all {
            let e = assertDecodeError(packet(0x82, [0, 1] + (v == .v5 ? [0] : []) + str("a") + [0x03]), version: v,
                                      v == .v5 ? .protocolError : .malformed)
            XCTAssertNotNil(e)
        }
    }

    func testAuthOutside5() {
        assertDecodeError(hex("F0 00"), version: .v3_1_1, .malformed)
        assertDecodeError(hex("F0 00"), version: .v3_1, .malformed)
        // Before any CONNECT the stream is read with 3.1.1 rules.
        assertDecodeError(hex("F0 00"), version: nil, .malformed)
        // A 3.1.1 CONNECT followed by AUTH.
        let connect = Array(Packet.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "a"))
            .encoded(version: .v3_1_1).readableBytesView)
        assertDecodeError(connect + hex("F0 02 18 00"), version: nil, .malformed)
    }

    func testAuthInvalidReasonCode() {
        assertDecodeError(hex("F0 01 87"), version: .v5, .malformed)
    }
}
