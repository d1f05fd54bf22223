import NIOCore

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape: packet id, reason code, properties.
public struct PubAckPacket: Sendable, Equatable {
    public var packetId: UInt16
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(packetId: UInt16, reasonCode: ReasonCode = .success, properties: Properties = Properties()) {
        self.packetId = packetId
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(type: PacketType, flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion) throws -> PubAckPacket {
        let expected: UInt8 = type == .pubrel ? 0x02 : 0x00
        guard flags == expected else { throw MQTTCodecError.malformed("\(type) reserved flags invalid") }
        let id = try body.mqttReadUInt16()
        guard id != 0 else { throw MQTTCodecError.protocolError("packet identifier 0") }
        var code = ReasonCode.success
        var props = Properties()
        if version == .v5 {
            if body.readableBytes >= 1 { code = ReasonCode(try body.mqttReadByte()) }
            if body.readableBytes >= 1 { props = try Properties.read(from: &body, context: .ack) }
        }
        guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("trailing bytes after \(type)") }
        return PubAckPacket(packetId: id, reasonCode: code, properties: props)
    }

    func bodyLength(version: ProtocolVersion) -> Int {
        guard version == .v5 else { return 2 }
        if properties.isEmpty { return reasonCode == .success ? 2 : 3 }
        return 3 + properties.encodedLengthWithPrefix
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.writeInteger(packetId)
        guard version == .v5 else { return }
        if properties.isEmpty && reasonCode == .success { return }
        b.writeInteger(reasonCode.rawValue)
        if !properties.isEmpty { properties.write(into: &b) }
    }
}
