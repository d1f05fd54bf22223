import NIOCore

/// Splits a byte stream into packets. A pure function over `ByteBuffer`: returns `nil` when
/// more bytes are needed, throws `MQTTCodecError` when the stream can never be valid.
///
/// Limits are checked at the earliest byte: at most four remaining-length bytes, and the
/// total packet size against `maxPacketSize` as soon as the length is known, before any of
/// the body is waited for.
public struct MQTTDecoder: Sendable {
    /// Set from the first CONNECT decoded; packets before it are read with 3.1.1 rules.
    public var version: ProtocolVersion?
    /// Largest packet accepted, fixed header included.
    public var maxPacketSize: Int
    /// Refuse U+0001-U+001F and U+007F-U+009F in topics, client ids and user names as
    /// malformed (the spec's SHOULD NOT; mosquitto refuses them too).
    public var strictUTF8: Bool
    /// The topic of the last PUBLISH decoded: one entry, shared by the next PUBLISH that
    /// names the same topic (no allocation, no second validation).
    var lastTopic = ""

    public init(version: ProtocolVersion? = nil, maxPacketSize: Int = 268_435_460, strictUTF8: Bool = true) {
        self.version = version
        self.maxPacketSize = maxPacketSize
        self.strictUTF8 = strictUTF8
    }

    /// Protocol level of a CONNECT body whose name and level are readable.
    static func sniffVersion(_ body: ByteBuffer?) -> ProtocolVersion? {
        guard var b = body, let name = try? b.mqttReadString(), let level = try? b.mqttReadByte() else { return nil }
        switch (name, level) {
        case ("MQTT", 4): return .v3_1_1
        case ("MQTT", 5): return .v5
        case ("MQIsdp", 3): return .v3_1
        default: return nil
        }
    }

    /// Type and flag rules of the first byte, checked before any length byte is awaited.
    static func validateFirstByte(_ first: UInt8) throws {
        let flags = first & 0x0F
        guard let type = PacketType(rawValue: first >> 4) else {
            throw MQTTCodecError.malformed("reserved packet type 0")
        }
        switch type {
        case .publish:
            if flags & 0x06 == 0x06 { throw MQTTCodecError.malformed("PUBLISH QoS 3") }
        case .pubrel, .subscribe, .unsubscribe:
            if flags != 0x02 { throw MQTTCodecError.malformed("\(type) reserved flags invalid") }
        default:
            if flags != 0 { throw MQTTCodecError.malformed("\(type) reserved flags set") }
        }
    }

    /// Parses the fixed header. Returns (type, flags, header length, body length) or nil.
    static func parseFixedHeader(_ buffer: ByteBuffer, maxPacketSize: Int) throws -> (UInt8, UInt8, Int, Int)? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        try validateFirstByte(first)
        var length = 0
        var multiplier = 1
        var i = 1
        while true {
            guard let b = buffer.getInteger(at: start + i, as: UInt8.self) else { return nil }
            length += Int(b & 0x7F) * multiplier
            i += 1
            if b & 0x80 == 0 { break }
            if i == 5 { throw MQTTCodecError.malformed("remaining length longer than 4 bytes") }
            multiplier *= 128
        }
        let total = i + length
        if total > maxPacketSize { throw MQTTCodecError.packetTooLarge(size: total, limit: maxPacketSize) }
        return (first >> 4, first & 0x0F, i, length)
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Packet? {
        guard let (typeRaw, flags, headerLength, bodyLength) = try Self.parseFixedHeader(buffer, maxPacketSize: maxPacketSize) else {
            return nil
        }
        guard buffer.readableBytes >= headerLength + bodyLength else { return nil }
        guard let type = PacketType(rawValue: typeRaw) else {
            throw MQTTCodecError.malformed("reserved packet type 0")
        }
        if type == .auth && version != nil && version != .v5 {
            throw MQTTCodecError.malformed("packet type 15 is reserved before 5.0")
        }
        let packet: Packet
        if type == .publish {
            let whole = buffer.readSlice(length: headerLength + bodyLength)!
            var body = whole.getSlice(at: headerLength, length: bodyLength)!
            // The received bytes are kept only for a QoS 0 PUBLISH without retain, the one kind
            // forwarded as received (`Message`): for others they were one more reference to
            // retain and release at each copy of the packet on its way through the broker.
            packet = try Packet.decode(type: type, flags: flags, body: &body, version: version ?? .v3_1_1, strict: strictUTF8,
                                       lastTopic: &lastTopic, received: flags & 0x07 == 0 ? whole : nil)
        } else {
            buffer.moveReaderIndex(forwardBy: headerLength)
            var body = buffer.readSlice(length: bodyLength)!
            packet = try Packet.decode(type: type, flags: flags, body: &body, version: version ?? .v3_1_1, strict: strictUTF8)
        }
        if case .connect(let c) = packet, version == nil { version = c.protocolVersion }
        return packet
    }
}

/// `MQTTDecoder` as a NIO single-step decoder for `ByteToMessageHandler`.
public struct MQTTPacketDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Packet
    public var decoder: MQTTDecoder

    public init(maxPacketSize: Int, version: ProtocolVersion? = nil, strictUTF8: Bool = true) {
        self.decoder = MQTTDecoder(version: version, maxPacketSize: maxPacketSize, strictUTF8: strictUTF8)
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Packet? {
        guard decoder.version == nil else { return try decoder.decode(buffer: &buffer) }
        // A server stream must start with CONNECT: refuse anything else at its first byte.
        if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first >> 4 != PacketType.connect.rawValue {
            throw MQTTCodecError.protocolError("first packet is not CONNECT")
        }
        let saved = buffer
        do {
            return try decoder.decode(buffer: &buffer)
        } catch let e as MQTTCodecError {
            // Before CONNECT: report the level if this was a CONNECT whose header is readable.
            guard let (type, _, header, length) = try? MQTTDecoder.parseFixedHeader(saved, maxPacketSize: .max),
                  type == PacketType.connect.rawValue else { throw e }
            let body = saved.getSlice(at: saved.readerIndex + header, length: min(length, saved.readableBytes - header))
            throw ConnectDecodingError(version: MQTTDecoder.sniffVersion(body), underlying: e)
        }
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Packet? {
        try decoder.decode(buffer: &buffer)
    }
}

extension MQTTDecoder {
    /// Size of the packet starting at `buffer`'s reader index, fixed header included, once
    /// its fixed header is readable; nil before. Throws as `decode` does for a first byte or
    /// a length that can never be valid (before any of the body is awaited).
    public func packetLength(_ buffer: ByteBuffer) throws -> Int? {
        guard let (_, _, header, body) = try Self.parseFixedHeader(buffer, maxPacketSize: maxPacketSize) else { return nil }
        return header + body
    }
}
