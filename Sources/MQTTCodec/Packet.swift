import NIOCore

/// Every MQTT control packet. The single dispatch point for decode and encode.
public enum Packet: Sendable, Equatable {
    case connect(ConnectPacket)
    case connack(ConnAckPacket)
    case publish(PublishPacket)
    case puback(PubAckPacket)
    case pubrec(PubAckPacket)
    case pubrel(PubAckPacket)
    case pubcomp(PubAckPacket)
    case subscribe(SubscribePacket)
    case suback(SubAckPacket)
    case unsubscribe(UnsubscribePacket)
    case unsuback(UnsubAckPacket)
    case pingreq
    case pingresp
    case disconnect(DisconnectPacket)
    case auth(AuthPacket)

    public var type: PacketType {
        switch self {
        case .connect: return .connect
        case .connack: return .connack
        case .publish: return .publish
        case .puback: return .puback
        case .pubrec: return .pubrec
        case .pubrel: return .pubrel
        case .pubcomp: return .pubcomp
        case .subscribe: return .subscribe
        case .suback: return .suback
        case .unsubscribe: return .unsubscribe
        case .unsuback: return .unsuback
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect: return .disconnect
        case .auth: return .auth
        }
    }

    /// Decodes one packet body whose fixed header has been read. `strict`: refuse control
    /// characters in topics, client ids and user names (`strict_utf8`).
    static func decode(type: PacketType, flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion,
                       strict: Bool = false) throws -> Packet {
        var none = ""
        return try decode(type: type, flags: flags, body: &body, version: version, strict: strict, lastTopic: &none)
    }

    /// As above; a PUBLISH shares `lastTopic` when it names the same topic and keeps
    /// `received` (the whole packet).
    static func decode(type: PacketType, flags: UInt8, body: inout ByteBuffer, version: ProtocolVersion,
                       strict: Bool, lastTopic: inout String, received: ByteBuffer? = nil) throws -> Packet {
        switch type {
        case .connect: return .connect(try ConnectPacket.decode(flags: flags, body: &body, strict: strict))
        case .connack: return .connack(try ConnAckPacket.decode(flags: flags, body: &body, version: version))
        case .publish:
            return .publish(try PublishPacket.decode(flags: flags, body: &body, version: version, strict: strict,
                                                     lastTopic: &lastTopic, received: received))
        case .puback: return .puback(try PubAckPacket.decode(type: type, flags: flags, body: &body, version: version))
        case .pubrec: return .pubrec(try PubAckPacket.decode(type: type, flags: flags, body: &body, version: version))
        case .pubrel: return .pubrel(try PubAckPacket.decode(type: type, flags: flags, body: &body, version: version))
        case .pubcomp: return .pubcomp(try PubAckPacket.decode(type: type, flags: flags, body: &body, version: version))
        case .subscribe: return .subscribe(try SubscribePacket.decode(flags: flags, body: &body, version: version, strict: strict))
        case .suback: return .suback(try SubAckPacket.decode(flags: flags, body: &body, version: version))
        case .unsubscribe: return .unsubscribe(try UnsubscribePacket.decode(flags: flags, body: &body, version: version, strict: strict))
        case .unsuback: return .unsuback(try UnsubAckPacket.decode(flags: flags, body: &body, version: version))
        case .pingreq, .pingresp:
            guard flags == 0 else { throw MQTTCodecError.malformed("\(type) reserved flags set") }
            guard body.readableBytes == 0 else { throw MQTTCodecError.malformed("\(type) with a body") }
            return type == .pingreq ? .pingreq : .pingresp
        case .disconnect: return .disconnect(try DisconnectPacket.decode(flags: flags, body: &body, version: version))
        case .auth: return .auth(try AuthPacket.decode(flags: flags, body: &body, version: version))
        }
    }

    private var fixedHeaderFlags: UInt8 {
        switch self {
        case .publish(let p): return p.flags
        case .pubrel, .subscribe, .unsubscribe: return 0x02
        default: return 0
        }
    }

    /// Length of the variable header and payload.
    public func bodyLength(version: ProtocolVersion) -> Int {
        switch self {
        case .connect(let p): return p.bodyLength()
        case .connack(let p): return p.bodyLength(version: version)
        case .publish(let p): return p.bodyLength(version: version)
        case .puback(let p), .pubrec(let p), .pubrel(let p), .pubcomp(let p): return p.bodyLength(version: version)
        case .subscribe(let p): return p.bodyLength(version: version)
        case .suback(let p): return p.bodyLength(version: version)
        case .unsubscribe(let p): return p.bodyLength(version: version)
        case .unsuback(let p): return p.bodyLength(version: version)
        case .pingreq, .pingresp: return 0
        case .disconnect(let p): return p.bodyLength(version: version)
        case .auth(let p): return p.bodyLength()
        }
    }

    /// Total bytes on the wire.
    public func encodedLength(version: ProtocolVersion) -> Int {
        let body = bodyLength(version: version)
        return 1 + MQTTString.varIntLength(body) + body
    }

    /// Appends the packet to `buffer`.
    public func encode(into buffer: inout ByteBuffer, version: ProtocolVersion) {
        let body = bodyLength(version: version)
        buffer.writeInteger((type.rawValue << 4) | fixedHeaderFlags)
        buffer.mqttWriteVarInt(body)
        switch self {
        case .connect(let p): p.writeBody(into: &buffer)
        case .connack(let p): p.writeBody(into: &buffer, version: version)
        case .publish(let p): p.writeBody(into: &buffer, version: version)
        case .puback(let p), .pubrec(let p), .pubrel(let p), .pubcomp(let p): p.writeBody(into: &buffer, version: version)
        case .subscribe(let p): p.writeBody(into: &buffer, version: version)
        case .suback(let p): p.writeBody(into: &buffer, version: version)
        case .unsubscribe(let p): p.writeBody(into: &buffer, version: version)
        case .unsuback(let p): p.writeBody(into: &buffer, version: version)
        case .pingreq, .pingresp: break
        case .disconnect(let p): p.writeBody(into: &buffer, version: version)
        case .auth(let p): p.writeBody(into: &buffer)
        }
    }

    /// Encodes into a new buffer of exactly the right size.
    public func encoded(version: ProtocolVersion, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var b = allocator.buffer(capacity: encodedLength(version: version))
        encode(into: &b, version: version)
        return b
    }
}
