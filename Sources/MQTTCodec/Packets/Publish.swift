import NIOCore

/// PUBLISH. The payload is a slice of the receive buffer when decoded (no copy).
public struct PublishPacket: Sendable, Equatable {
    public var dup: Bool
    public var qos: QoS
    public var retain: Bool
    /// May be empty in 5.0 when a topic alias stands for it.
    public var topic: String
    /// Present iff qos > 0.
    public var packetId: UInt16?
    public var properties: Properties
    public var payload: ByteBuffer
    /// The whole packet as it was received, fixed header included: a slice of the receive
    /// buffer, set by the decoder for a QoS 0 PUBLISH without retain (nil for other ones and
    /// for a packet built in code). A router may forward these bytes unchanged when they are
    /// what a subscriber gets (see `Message`). Whoever changes another field of a decoded
    /// packet must clear it. Not part of equality.
    public var received: ByteBuffer?

    public static func == (a: PublishPacket, b: PublishPacket) -> Bool {
        a.dup == b.dup && a.qos == b.qos && a.retain == b.retain && a.topic == b.topic && a.packetId == b.packetId
            && a.properties == b.properties && a.payload == b.payload
    }

    public init(
        dup: Bool = false, qos: QoS = .atMostOnce, retain: Bool = false, topic: String,
        packetId: UInt16? = nil, properties: Properties = Properties(), payload: ByteBuffer
    ) {
        self.dup = dup
        self.qos = qos
        self.retain = retain
        self.topic = topic
        self.packetId = packetId
        self.properties = properties
        self.payload = payload
    }

    var flags: UInt8 {
        (dup ? 0x08 : 0) | (qos.rawValue << 1) | (retain ? 0x01 : 0)
    }

    /// Decodes a PUBLISH body. `lastTopic` is the topic of the connection's previous PUBLISH:
    /// when this one names the same bytes, its `String` is shared (publishers usually repeat
    /// their topics; a topic over 15 UTF-8 bytes is otherwise a heap allocation per message)
    /// and not validated again. `received` is the whole packet, kept as `received`.
    static func decode(flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion, strict: Bool = false,
                       lastTopic: inout String, received: ByteBuffer? = nil) throws -> PublishPacket {
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else { throw MQTTCodecError.malformed("PUBLISH QoS 3") }
        let dup = flags & 0x08 != 0
        if qos == .atMostOnce && dup { throw MQTTCodecError.malformed("DUP set on a QoS 0 PUBLISH") }
        let known = body.mqttReadStringIfEqual(to: &lastTopic)
        let topic = known ? lastTopic : try body.mqttReadString(rejectControl: strict)
        var packetId: UInt16?
        if qos != .atMostOnce {
            let id = try body.mqttReadUInt16()
            guard id != 0 else { throw MQTTCodecError.protocolError("packet identifier 0") }
            packetId = id
        }
        let props = version == .v5 ? try Properties.read(from: &body, context: .publish) : Properties()
        if topic.isEmpty {
            if version != .v5 || props.topicAlias == nil {
                throw MQTTCodecError.protocolError("zero-length topic name without a topic alias")
            }
        } else if !known {
            try Topic.validateName(topic)
            lastTopic = topic
        }
        let payload = body.readSlice(length: body.readableBytes)!
        var p = PublishPacket(dup: dup, qos: qos, retain: flags & 1 != 0, topic: topic, packetId: packetId,
                              properties: props, payload: payload)
        p.received = received
        return p
    }

    /// Length of everything after the fixed header.
    public func bodyLength(version: ProtocolVersion) -> Int {
        var n = MQTTString.fieldLength(topic) + payload.readableBytes
        if qos != .atMostOnce { n += 2 }
        if version == .v5 { n += properties.encodedLengthWithPrefix }
        return n
    }

    /// Writes the fixed header and variable header but not the payload, so a shared payload
    /// buffer can follow it on the wire without being copied (a vectored write).
    public func encodeHeader(into b: inout ByteBuffer, version: ProtocolVersion) {
        let body = bodyLength(version: version)
        b.writeInteger((PacketType.publish.rawValue << 4) | flags)
        b.mqttWriteVarInt(body)
        b.mqttWriteString(topic)
        if qos != .atMostOnce { b.writeInteger(packetId ?? 0) }
        if version == .v5 { properties.write(into: &b) }
    }

    /// Size of what `encodeHeader` writes.
    public func headerLength(version: ProtocolVersion) -> Int {
        let body = bodyLength(version: version)
        return 1 + MQTTString.varIntLength(body) + body - payload.readableBytes
    }

    func writeBody(into b: inout ByteBuffer, version: ProtocolVersion) {
        b.mqttWriteString(topic)
        if qos != .atMostOnce { b.writeInteger(packetId ?? 0) }
        if version == .v5 { properties.write(into: &b) }
        var p = payload
        b.writeBuffer(&p)
    }
}
