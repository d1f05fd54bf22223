import NIOCore

/// The last will carried in CONNECT.
public struct Will: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: QoS
    public var retain: Bool
    /// Will properties (5.0): will delay, expiry, content type, response topic, ...
    public var properties: Properties

    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties = Properties()) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// CONNECT (MQTT 3.1 3.1, 3.1.1 3.1, 5.0 3.1).
public struct ConnectPacket: Sendable, Equatable {
    public var protocolVersion: ProtocolVersion
    /// Clean Session (3.x) / Clean Start (5.0).
    public var cleanStart: Bool
    public var keepAlive: UInt16
    public var properties: Properties
    public var clientId: String
    public var will: Will?
    public var username: String?
    public var password: ByteBuffer?

    public init(
        protocolVersion: ProtocolVersion, cleanStart: Bool = true, keepAlive: UInt16 = 60,
        properties: Properties = Properties(), clientId: String, will: Will? = nil,
        username: String? = nil, password: ByteBuffer? = nil
    ) {
        self.protocolVersion = protocolVersion
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.properties = properties
        self.clientId = clientId
        self.will = will
        self.username = username
        self.password = password
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, strict: Bool = false) throws -> ConnectPacket {
        guard flags == 0 else { throw MQTTCodecError.malformed("CONNECT reserved flags set") }
        let name = try body.mqttReadString()
        let level = try body.mqttReadByte()
        let version: ProtocolVersion
        switch (name, level) {
        case ("MQTT", 4): version = .v3_1_1
        case ("MQTT", 5): version = .v5
        case ("MQIsdp", 3): version = .v3_1
        case ("MQTT", _), ("MQIsdp", _): throw MQTTCodecError.unsupportedProtocolVersion(level)
        default: throw MQTTCodecError.unknownProtocolName(name)
        }
        let cf = try body.mqttReadByte()
        guard cf & 0x01 == 0 else { throw MQTTCodecError.malformed("CONNECT reserved flag set") }
        let cleanStart = cf & 0x02 != 0
        let willFlag = cf & 0x04 != 0
        let willQoSRaw = (cf >> 3) & 0x03
        let willRetain = cf & 0x20 != 0
        let passwordFlag = cf & 0x40 != 0
        let usernameFlag = cf & 0x80 != 0
        guard let willQoS = QoS(rawValue: willQoSRaw) else { throw MQTTCodecError.malformed("will QoS 3") }
        if !willFlag && (willQoSRaw != 0 || willRetain) {
            throw MQTTCodecError.malformed("will QoS or retain set without will flag")
        }
        if version != .v5 && passwordFlag && !usernameFlag {
            throw MQTTCodecError.malformed("password flag set without username flag")
        }
        let keepAlive = try body.mqttReadUInt16()
        let properties = version == .v5 ? try Properties.read(from: &body, context: .connect) : Properties()
        let clientId = try body.mqttReadString(rejectControl: strict)
        var will: Will?
        if willFlag {
            let willProps = version == .v5 ? try Properties.read(from: &body, context: .will) : Properties()
            let topic = try body.mqttReadString(rejectControl: strict)
            try Topic.validateName(topic)
            let payload = try body.mqttReadBinary()
            will = Will(topic: topic, payload: payload, qos: willQoS, retain: willRetain, properties: willProps)
        }
        let username = usernameFlag ? try body.mqttReadString(rejectControl: strict) : nil
        let password = passwordFlag ? try body.mqttReadBinary() : nil
        guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("trailing bytes after CONNECT payload") }
        return ConnectPacket(
            protocolVersion: version, cleanStart: cleanStart, keepAlive: keepAlive, properties: properties,
            clientId: clientId, will: will, username: username, password: password)
    }

    func bodyLength() -> Int {
        var n = MQTTString.fieldLength(protocolVersion.protocolName) + 1 + 1 + 2
        if protocolVersion == .v5 { n += properties.encodedLengthWithPrefix }
        n += MQTTString.fieldLength(clientId)
        if let will {
            if protocolVersion == .v5 { n += will.properties.encodedLengthWithPrefix }
            n += MQTTString.fieldLength(will.topic) + 2 + will.payload.readableBytes
        }
        if let username { n += MQTTString.fieldLength(username) }
        if let password { n += 2 + password.readableBytes }
        return n
    }

    func writeBody(into b: inout ByteBuffer) {
        b.mqttWriteString(protocolVersion.protocolName)
        b.writeInteger(protocolVersion.rawValue)
        var cf: UInt8 = 0
        if cleanStart { cf |= 0x02 }
        if let will {
            cf |= 0x04 | (will.qos.rawValue << 3)
            if will.retain { cf |= 0x20 }
        }
        if password != nil { cf |= 0x40 }
        if username != nil { cf |= 0x80 }
        b.writeInteger(cf)
        b.writeInteger(keepAlive)
        if protocolVersion == .v5 { properties.write(into: &b) }
        b.mqttWriteString(clientId)
        if let will {
            if protocolVersion == .v5 { will.properties.write(into: &b) }
            b.mqttWriteString(will.topic)
            b.mqttWriteBinary(will.payload)
        }
        if let username { b.mqttWriteString(username) }
        if let password { b.mqttWriteBinary(password) }
    }
}
