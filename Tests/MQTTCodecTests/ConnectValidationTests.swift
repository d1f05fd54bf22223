import MQTTCodec
import NIOCore
import XCTest

/// CONNECT-specific rejections: protocol name and level, connect flags, payload fields.
final class ConnectValidationTests: XCTestCase {
    /// A CONNECT body: protocol name, level, flags, keep alive 60, (5.0) empty properties, then `payload`.
    private func connect(name: String = "MQTT", level: UInt8 = 4, flags: UInt8, payload: [UInt8]) -> [UInt8] {
        var body = str(name) + [level, flags, 0, 60]
        if level == 5 { body += [0] }
        return packet(0x10, body + payload)
    }

    func testUnknownProtocolName() {
        for name in ["MQTX", "mqtt", "", "MQIsdpX", "HTTP"] {
            let e = assertDecodeError(connect(name: name, flags: 0x02, payload: str("c")), version: nil,
                                      .unknownProtocolName)
            XCTAssertEqual(e, .unknownProtocolName(name))
        }
    }

    func testUnsupportedProtocolLevel() {
        for level: UInt8 in [0, 1, 2, 3, 6, 7, 0x84, 0xFF] {
            let e = assertDecodeError(connect(level: level, flags: 0x02, payload: str("c")), version: nil,
                                      .unsupportedProtocolVersion)
            XCTAssertEqual(e, .unsupportedProtocolVersion(level))
        }
        // The name and the level must agree: MQIsdp is only 3.1.
        for level: UInt8 in [4, 5] {
            let e = assertDecodeError(connect(name: "MQIsdp", level: level, flags: 0x02, payload: str("c")),
                                      version: nil, .unsupportedProtocolVersion)
            XCTAssertEqual(e, .unsupportedProtocolVersion(level))
        }
    }

    func testLevel6IsRejectedEvenOnAV5Decoder() {
        assertDecodeError(connect(level: 6, flags: 0x02, payload: str("c")), version: .v5, .unsupportedProtocolVersion)
    }

    func testReservedConnectFlag() {
        for level: UInt8 in [4, 5] {
            assertDecodeError(connect(level: level, flags: 0x03, payload: str("c")), version: nil, .malformed)
            assertDecodeError(connect(level: level, flags: 0x01, payload: str("c")), version: nil, .malformed)
        }
        assertDecodeError(connect(name: "MQIsdp", level: 3, flags: 0x01, payload: str("c")), version: nil, .malformed)
    }

    func testWillQoS3() {
        for level: UInt8 in [4, 5] {
            let willProps: [UInt8] = level == 5 ? [0] : []
            // 0x1E = will QoS 3, will flag, clean start.
            assertDecodeError(connect(level: level, flags: 0x1E, payload: str("c") + willProps + str("w") + str("x")),
                              version: nil, .malformed)
        }
    }

    func testWillQoSOrRetainWithoutWillFlag() {
        for level: UInt8 in [4, 5] {
            assertDecodeError(connect(level: level, flags: 0x0A, payload: str("c")), version: nil, .malformed)
            assertDecodeError(connect(level: level, flags: 0x12, payload: str("c")), version: nil, .malformed)
            assertDecodeError(connect(level: level, flags: 0x22, payload: str("c")), version: nil, .malformed)
        }
    }

    func testPasswordWithoutUsername() {
        // 3.1.1 (MQTT-3.1.2-22) and 3.1: password flag requires the user name flag.
        assertDecodeError(connect(level: 4, flags: 0x42, payload: str("c") + str("pw")), version: nil, .malformed)
        assertDecodeError(connect(name: "MQIsdp", level: 3, flags: 0x42, payload: str("c") + str("pw")),
                          version: nil, .malformed)
        // 5.0 allows a password without a user name.
        XCTAssertEqual(try decodeOne(connect(level: 5, flags: 0x42, payload: str("c") + str("pw")), version: nil),
                       .connect(ConnectPacket(protocolVersion: .v5, clientId: "c", password: buffer("pw"))))
    }

    func testClientIdWithNulOrInvalidUTF8() {
        for level: UInt8 in [4, 5] {
            assertDecodeError(connect(level: level, flags: 0x02, payload: lenPrefixed([0x61, 0x00])), version: nil,
                              .malformed)
            assertDecodeError(connect(level: level, flags: 0x02, payload: lenPrefixed([0x00])), version: nil, .malformed)
            assertDecodeError(connect(level: level, flags: 0x02, payload: lenPrefixed([0xC3, 0x28])), version: nil,
                              .malformed)
            assertDecodeError(connect(level: level, flags: 0x02, payload: lenPrefixed([0xED, 0xA0, 0x80])),
                              version: nil, .malformed)
        }
    }

    func testUsernameAndProtocolNameInvalidUTF8() {
        assertDecodeError(connect(level: 4, flags: 0x82, payload: str("c") + lenPrefixed([0xFF])), version: nil,
                          .malformed)
        assertDecodeError(packet(0x10, lenPrefixed([0x4D, 0x51, 0x54, 0x00]) + [4, 2, 0, 60] + str("c")), version: nil,
                          .malformed)
    }

    func testWillTopicValidation() {
        for level: UInt8 in [4, 5] {
            let willProps: [UInt8] = level == 5 ? [0] : []
            for topic in ["a/#", "+", "a/+/b"] {
                assertDecodeError(connect(level: level, flags: 0x06, payload: str("c") + willProps + str(topic) + str("x")),
                                  version: nil, .topicNameInvalid)
            }
            assertDecodeError(connect(level: level, flags: 0x06, payload: str("c") + willProps + str("") + str("x")),
                              version: nil, .topicNameInvalid)
            assertDecodeError(connect(level: level, flags: 0x06,
                                      payload: str("c") + willProps + lenPrefixed([0x61, 0]) + str("x")),
                              version: nil, .malformed)
        }
    }

    func testPasswordIsBinaryNotUTF8() throws {
        // Password is Binary Data: any bytes, including 0x00 and 0xFF.
        let bytes = connect(level: 4, flags: 0xC2, payload: str("c") + str("u") + lenPrefixed([0x00, 0xFF, 0xED, 0xA0]))
        XCTAssertEqual(try decodeOne(bytes, version: nil), .connect(ConnectPacket(
            protocolVersion: .v3_1_1, clientId: "c", username: "u", password: buffer([0x00, 0xFF, 0xED, 0xA0]))))
    }

    func testConnectFlagsDecoded() throws {
        // 0xEE: user name, password, will retain, will QoS 1, will flag, clean session.
        let bytes = connect(level: 4, flags: 0xEE, payload: str("id") + str("t") + str("m") + str("u") + str("p"))
        guard case .connect(let c)? = try decodeOne(bytes, version: nil) else { return XCTFail("not a CONNECT") }
        XCTAssertEqual(c.protocolVersion, .v3_1_1)
        XCTAssertTrue(c.cleanStart)
        XCTAssertEqual(c.keepAlive, 60)
        XCTAssertEqual(c.clientId, "id")
        XCTAssertEqual(c.will, Will(topic: "t", payload: buffer("m"), qos: .atLeastOnce, retain: true))
        XCTAssertEqual(c.username, "u")
        XCTAssertEqual(c.password, buffer("p"))
    }
}
