import MQTTCodec
import NIOCore
import XCTest

// Inputs found by Fuzz/fuzz-mqtt (docs/fuzzing.md), each reduced to the packet that broke a
// property, with the behaviour it must have now.

final class FuzzRegressionTests: XCTestCase {
    private func decode(_ bytes: String, _ version: ProtocolVersion) throws -> Packet? {
        var decoder = MQTTDecoder(version: version)
        var b = buffer(hex(bytes))
        return try decoder.decode(buffer: &b)
    }

    /// fuzz-mqtt: a 3.1.1 SUBACK with return code 0xFE decoded, and re-encoded as 0x80, so the
    /// packet did not round-trip. 3.1.1 allows 0x00-0x02 and 0x80 only (MQTT-3.9.3-2); 5.0
    /// the Subscribe Reason Codes of 3.9.3. Anything else is malformed.
    func testSubAckReservedReturnCodeIsMalformed() throws {
        XCTAssertThrowsError(try decode("90 04 00 FD FE 00", .v3_1_1)) {
            guard case .malformed = $0 as? MQTTCodecError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try decode("90 03 00 01 03", .v3_1_1))
        XCTAssertThrowsError(try decode("90 04 00 01 00 03", .v5))
        XCTAssertThrowsError(try decode("90 04 00 01 00 84", .v5))
        XCTAssertEqual(try decode("90 06 00 01 00 01 02 80", .v3_1_1),
                       .suback(SubAckPacket(packetId: 1, reasonCodes: [.grantedQoS0, .grantedQoS1, .grantedQoS2, .unspecifiedError])))
        XCTAssertEqual(try decode("90 05 00 01 00 A2 97", .v5),
                       .suback(SubAckPacket(packetId: 1, reasonCodes: [.wildcardSubscriptionsNotSupported, .quotaExceeded])))
    }
}
