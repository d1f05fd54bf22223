import NIOCore

/// DISCONNECT. 3.x carries nothing; 5.0 a reason code and properties.
public struct DisconnectPacket: Sendable, Equatable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .normalDisconnection, properties: Properties = Properties()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion) throws -> DisconnectPacket {
        guard flags == 0 else { throw MQTTCodecError.malformed("DISCONNECT reserved flags set") }
        var packet = DisconnectPacket()
        if version == .v5 {
            if body.readableBytes >= 1 { packet.reasonCode = ReasonCode(try body.mqttReadByte()) }
            if body.readableBytes >= 1 { packet.properties = try Properties.read(from: &body, context: .disconnect) }
        }
        guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("trailing bytes after DISCONNECT") }
        return packet
    }

    func bodyLength(version: ProtocolVersion) -> Int {
        guard version == .v5 else { return 0 }
        if properties.isEmpty { return reasonCode == .normalDisconnection ? 0 : 1 }
        return 1 + properties.encodedLengthWithPrefix
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        guard version == .v5, bodyLength(version: version) > 0 else { return }
        b.writeInteger(reasonCode.rawValue)
        if !properties.isEmpty { properties.write(into: &b) }
    }
}

/// AUTH (5.0 only): enhanced authentication exchange.
public struct AuthPacket: Sendable, Equatable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .success, properties: Properties = Properties()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion) throws -> AuthPacket {
        guard version == .v5 else { throw MQTTCodecError.malformed("AUTH is a 5.0 packet") }
        guard flags == 0 else { throw MQTTCodecError.malformed("AUTH reserved flags set") }
        var packet = AuthPacket()
        if body.readableBytes >= 1 {
            packet.reasonCode = ReasonCode(try body.mqttReadByte())
            guard [0x00, 0x18, 0x19].contains(packet.reasonCode.rawValue) else {
                throw MQTTCodecError.malformed("AUTH reason code \(packet.reasonCode)")
            }
        }
        if body.readableBytes >= 1 { packet.properties = try Properties.read(from: &body, context: .auth) }
        guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("trailing bytes after AUTH") }
        return packet
    }

    func bodyLength() -> Int {
        if properties.isEmpty && reasonCode == .success { return 0 }
        return 1 + properties.encodedLengthWithPrefix
    }

    func writeBody(into b: inout ByteBuffer) {
        guard bodyLength() > 0 else { return }
        b.writeInteger(reasonCode.rawValue)
        properties.write(into: &b)
    }
}
