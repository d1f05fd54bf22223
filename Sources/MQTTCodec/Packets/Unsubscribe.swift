import NIOCore

/// UNSUBSCRIBE.
public struct UnsubscribePacket: Sendable, Equatable {
    public var packetId: UInt16
    public var properties: Properties
    public var filters: [String]

    public init(packetId: UInt16, properties: Properties = Properties(), filters: [String]) {
        self.packetId = packetId
        self.properties = properties
        self.filters = filters
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion, strict: Bool = false) throws -> UnsubscribePacket {
        guard flags == 0x02 else { throw MQTTCodecError.malformed("UNSUBSCRIBE reserved flags invalid") }
        let id = try body.mqttReadUInt16()
        guard id != 0 else { throw MQTTCodecError.protocolError("packet identifier 0") }
        let props = version == .v5 ? try Properties.read(from: &body, context: .unsubscribe) : Properties()
        var filters: [String] = []
        while body.readableBytes > 0 {
            let filter = try body.mqttReadString(rejectControl: strict)
            // MQTT-4.7.3-1, as in SUBSCRIBE.
            guard !filter.isEmpty else { throw MQTTCodecError.malformed("zero-length topic filter in UNSUBSCRIBE") }
            filters.append(filter)
        }
        guard !filters.isEmpty else { throw MQTTCodecError.protocolError("UNSUBSCRIBE without a topic filter") }
        return UnsubscribePacket(packetId: id, properties: props, filters: filters)
    }

    func bodyLength(version: ProtocolVersion) -> Int {
        var n = 2 + (version == .v5 ? properties.encodedLengthWithPrefix : 0)
        for f in filters { n += MQTTString.fieldLength(f) }
        return n
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.writeInteger(packetId)
        if version == .v5 { properties.write(into: &b) }
        for f in filters { b.mqttWriteString(f) }
    }
}

/// UNSUBACK. Reason codes exist only in 5.0.
public struct UnsubAckPacket: Sendable, Equatable {
    public var packetId: UInt16
    public var properties: Properties
    public var reasonCodes: [ReasonCode]

    public init(packetId: UInt16, properties: Properties = Properties(), reasonCodes: [ReasonCode] = []) {
        self.packetId = packetId
        self.properties = properties
        self.reasonCodes = reasonCodes
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion) throws -> UnsubAckPacket {
        guard flags == 0 else { throw MQTTCodecError.malformed("UNSUBACK reserved flags set") }
        let id = try body.mqttReadUInt16()
        var props = Properties()
        var codes: [ReasonCode] = []
        if version == .v5 {
            props = try Properties.read(from: &body, context: .unsuback)
            while body.readableBytes > 0 { codes.append(ReasonCode(try body.mqttReadByte())) }
        }
        guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("trailing bytes after UNSUBACK") }
        return UnsubAckPacket(packetId: id, properties: props, reasonCodes: codes)
    }

    func bodyLength(version: ProtocolVersion) -> Int {
        version == .v5 ? 2 + properties.encodedLengthWithPrefix + reasonCodes.count : 2
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.writeInteger(packetId)
        guard version == .v5 else { return }
        properties.write(into: &b)
        for c in reasonCodes { b.writeInteger(c.rawValue) }
    }
}
