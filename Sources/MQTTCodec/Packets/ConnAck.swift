import NIOCore

/// CONNACK. `reasonCode` is the 5.0 reason code; for 3.x it is written as the matching
/// return code (`ReasonCode.v3ConnackCode`).
public struct ConnAckPacket: Sendable, Equatable {
    public var sessionPresent: Bool
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(sessionPresent: Bool = false, reasonCode: ReasonCode = .success, properties: Properties = Properties()) {
        self.sessionPresent = sessionPresent
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion) throws -> ConnAckPacket {
        guard flags == 0 else { throw MQTTCodecError.malformed("CONNACK reserved flags set") }
        let ackFlags = try body.mqttReadByte()
        guard ackFlags & 0xFE == 0 else { throw MQTTCodecError.malformed("CONNACK reserved acknowledge flags set") }
        let code = try body.mqttReadByte()
        let props = version == .v5 ? try Properties.read(from: &body, context: .connack) : Properties()
        guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("trailing bytes after CONNACK") }
        return ConnAckPacket(sessionPresent: ackFlags & 1 != 0, reasonCode: ReasonCode(code), properties: props)
    }

    func bodyLength(version: ProtocolVersion) -> Int {
        2 + (version == .v5 ? properties.encodedLengthWithPrefix : 0)
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.writeInteger(UInt8(sessionPresent ? 1 : 0))
        if version == .v5 {
            b.writeInteger(reasonCode.rawValue)
            properties.write(into: &b)
        } else {
            b.writeInteger(reasonCode.v3ConnackCode)
        }
    }
}
