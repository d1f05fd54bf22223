import NIOCore

/// How retained messages are sent when a subscription is made (5.0).
public enum RetainHandling: UInt8, Sendable {
    /// Send retained messages at the time of the subscribe.
    case sendOnSubscribe = 0
    /// Send only if the subscription does not already exist.
    case sendIfNew = 1
    /// Do not send.
    case doNotSend = 2
}

/// One topic filter with its options.
public struct TopicSubscription: Sendable, Equatable {
    public var filter: String
    public var qos: QoS
    public var noLocal: Bool
    public var retainAsPublished: Bool
    public var retainHandling: RetainHandling

    public init(filter: String, qos: QoS, noLocal: Bool = false, retainAsPublished: Bool = false,
                retainHandling: RetainHandling = .sendOnSubscribe) {
        self.filter = filter
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }

    var optionsByte: UInt8 {
        qos.rawValue | (noLocal ? 0x04 : 0) | (retainAsPublished ? 0x08 : 0) | (retainHandling.rawValue << 4)
    }
}

/// SUBSCRIBE.
public struct SubscribePacket: Sendable, Equatable {
    public var packetId: UInt16
    public var properties: Properties
    public var subscriptions: [TopicSubscription]

    public init(packetId: UInt16, properties: Properties = Properties(), subscriptions: [TopicSubscription]) {
        self.packetId = packetId
        self.properties = properties
        self.subscriptions = subscriptions
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion, strict: Bool = false) throws -> SubscribePacket {
        guard flags == 0x02 else { throw MQTTCodecError.malformed("SUBSCRIBE reserved flags invalid") }
        let id = try body.mqttReadUInt16()
        guard id != 0 else { throw MQTTCodecError.protocolError("packet identifier 0") }
        let props = version == .v5 ? try Properties.read(from: &body, context: .subscribe) : Properties()
        var subs: [TopicSubscription] = []
        while body.readableBytes > 0 {
            let filter = try body.mqttReadString(rejectControl: strict)
            // MQTT-4.7.3-1: a topic filter is at least one character long. A malformed
            // packet: 3.1.1 closes the connection (4.8), 5.0 sends DISCONNECT 0x81.
            guard !filter.isEmpty else { throw MQTTCodecError.malformed("zero-length topic filter in SUBSCRIBE") }
            let o = try body.mqttReadByte()
            guard let qos = QoS(rawValue: o & 0x03) else {
                // 5.0 3.8.3.1: a Protocol Error; 3.1.1 MQTT-3-8.3-4: malformed.
                if version == .v5 { throw MQTTCodecError.protocolError("subscription QoS 3") }
                throw MQTTCodecError.malformed("subscription QoS 3")
            }
            if version == .v5 {
                guard o & 0xC0 == 0 else { throw MQTTCodecError.malformed("subscription options reserved bits set") }
                guard let rh = RetainHandling(rawValue: (o >> 4) & 0x03) else {
                    throw MQTTCodecError.protocolError("retain handling 3")
                }
                subs.append(TopicSubscription(filter: filter, qos: qos, noLocal: o & 0x04 != 0,
                                              retainAsPublished: o & 0x08 != 0, retainHandling: rh))
            } else {
                guard o & 0xFC == 0 else { throw MQTTCodecError.malformed("subscription options reserved bits set") }
                subs.append(TopicSubscription(filter: filter, qos: qos))
            }
        }
        guard !subs.isEmpty else { throw MQTTCodecError.protocolError("SUBSCRIBE without a topic filter") }
        return SubscribePacket(packetId: id, properties: props, subscriptions: subs)
    }

    func bodyLength(version: ProtocolVersion) -> Int {
        var n = 2 + (version == .v5 ? properties.encodedLengthWithPrefix : 0)
        for s in subscriptions { n += MQTTString.fieldLength(s.filter) + 1 }
        return n
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.writeInteger(packetId)
        if version == .v5 { properties.write(into: &b) }
        for s in subscriptions {
            b.mqttWriteString(s.filter)
            b.writeInteger(version == .v5 ? s.optionsByte : s.qos.rawValue)
        }
    }
}

/// SUBACK: one reason code per requested filter (granted QoS or a failure code).
public struct SubAckPacket: Sendable, Equatable {
    public var packetId: UInt16
    public var properties: Properties
    public var reasonCodes: [ReasonCode]

    public init(packetId: UInt16, properties: Properties = Properties(), reasonCodes: [ReasonCode]) {
        self.packetId = packetId
        self.properties = properties
        self.reasonCodes = reasonCodes
    }

    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion) throws -> SubAckPacket {
        guard flags == 0 else { throw MQTTCodecError.malformed("SUBACK reserved flags set") }
        let id = try body.mqttReadUInt16()
        let props = version == .v5 ? try Properties.read(from: &body, context: .suback) : Properties()
        var codes: [ReasonCode] = []
        while body.readableBytes > 0 {
            let code = try body.mqttReadByte()
            // MQTT-3.9.3-2 (3.1.1: 0x00-0x02 and 0x80 only); 5.0 3.9.3: the Subscribe Reason Codes.
            guard (version == .v5 ? Self.v5Codes : Self.v3Codes).contains(code) else {
                throw MQTTCodecError.malformed("SUBACK reason code 0x\(String(code, radix: 16))")
            }
            codes.append(ReasonCode(code))
        }
        return SubAckPacket(packetId: id, properties: props, reasonCodes: codes)
    }

    private static let v3Codes: Set<UInt8> = [0x00, 0x01, 0x02, 0x80]
    private static let v5Codes: Set<UInt8> = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]

    func bodyLength(version: ProtocolVersion) -> Int {
        2 + (version == .v5 ? properties.encodedLengthWithPrefix : 0) + reasonCodes.count
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.writeInteger(packetId)
        if version == .v5 { properties.write(into: &b) }
        for c in reasonCodes {
            // 3.x knows only granted QoS 0-2 and 0x80 failure.
            b.writeInteger(version == .v5 || !c.isFailure ? c.rawValue : 0x80)
        }
    }
}
