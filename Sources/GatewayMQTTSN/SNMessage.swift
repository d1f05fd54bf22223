import NIOCore

/// The flags byte of MQTT-SN 1.2 (5.3.4): DUP, QoS (0, 1, 2, or 3 for "-1"), retain, will,
/// clean session, topic id type.
public struct SNFlags: Sendable, Equatable {
    public var dup = false
    /// 0, 1, 2, or -1 (QoS -1, "publish without connection", encoded 0b11).
    public var qos: Int8 = 0
    public var retain = false
    public var will = false
    public var cleanSession = false
    public var topicIdType: SNTopicIdType = .normal

    public init(dup: Bool = false, qos: Int8 = 0, retain: Bool = false, will: Bool = false, cleanSession: Bool = false,
                topicIdType: SNTopicIdType = .normal) {
        self.dup = dup
        self.qos = qos
        self.retain = retain
        self.will = will
        self.cleanSession = cleanSession
        self.topicIdType = topicIdType
    }

    public init(byte: UInt8) throws {
        dup = byte & 0x80 != 0
        let q = (byte >> 5) & 0x03
        qos = q == 3 ? -1 : Int8(q)
        retain = byte & 0x10 != 0
        will = byte & 0x08 != 0
        cleanSession = byte & 0x04 != 0
        guard let t = SNTopicIdType(rawValue: byte & 0x03) else { throw SNDecodeError.malformed("reserved topic id type") }
        topicIdType = t
    }

    public var byte: UInt8 {
        var b: UInt8 = 0
        if dup { b |= 0x80 }
        b |= (qos < 0 ? 3 : UInt8(qos) & 0x03) << 5
        if retain { b |= 0x10 }
        if will { b |= 0x08 }
        if cleanSession { b |= 0x04 }
        return b | topicIdType.rawValue
    }
}

public enum SNTopicIdType: UInt8, Sendable {
    case normal = 0
    case predefined = 1
    case short = 2
}

/// MQTT-SN return codes (5.3.10).
public enum SNReturnCode: UInt8, Sendable {
    case accepted = 0
    case congestion = 1
    case invalidTopicId = 2
    case notSupported = 3
}

/// Either a topic name (in SUBSCRIBE/UNSUBSCRIBE with topic id type normal) or a 2-byte id.
public enum SNTopic: Sendable, Equatable {
    case name(String)
    case id(UInt16)
}

public enum SNDecodeError: Error, Equatable, CustomStringConvertible, Sendable {
    case malformed(String)
    case unknownType(UInt8)

    public var description: String {
        switch self {
        case .malformed(let m): return "malformed datagram: \(m)"
        case .unknownType(let t): return "unknown message type 0x\(String(t, radix: 16))"
        }
    }
}

/// Every MQTT-SN 1.2 message the gateway reads or writes (section 5.4).
public enum SNMessage: Sendable, Equatable {
    case advertise(gatewayId: UInt8, duration: UInt16)
    case searchGateway(radius: UInt8)
    case gatewayInfo(gatewayId: UInt8, address: [UInt8])
    case connect(flags: SNFlags, duration: UInt16, clientId: String)
    case connack(SNReturnCode)
    case willTopicRequest
    case willTopic(flags: SNFlags, topic: String)  // empty topic: no will
    case willMessageRequest
    case willMessage([UInt8])
    case register(topicId: UInt16, msgId: UInt16, topicName: String)
    case regack(topicId: UInt16, msgId: UInt16, SNReturnCode)
    case publish(flags: SNFlags, topicId: UInt16, msgId: UInt16, data: ByteBuffer)
    case puback(topicId: UInt16, msgId: UInt16, SNReturnCode)
    case pubcomp(msgId: UInt16)
    case pubrec(msgId: UInt16)
    case pubrel(msgId: UInt16)
    case subscribe(flags: SNFlags, msgId: UInt16, topic: SNTopic)
    case suback(flags: SNFlags, topicId: UInt16, msgId: UInt16, SNReturnCode)
    case unsubscribe(flags: SNFlags, msgId: UInt16, topic: SNTopic)
    case unsuback(msgId: UInt16)
    case pingreq(clientId: String?)
    case pingresp
    case disconnect(duration: UInt16?)
    case willTopicUpdate(flags: SNFlags, topic: String)
    case willTopicResponse(SNReturnCode)
    case willMessageUpdate([UInt8])
    case willMessageResponse(SNReturnCode)

    public var typeByte: UInt8 {
        switch self {
        case .advertise: return 0x00
        case .searchGateway: return 0x01
        case .gatewayInfo: return 0x02
        case .connect: return 0x04
        case .connack: return 0x05
        case .willTopicRequest: return 0x06
        case .willTopic: return 0x07
        case .willMessageRequest: return 0x08
        case .willMessage: return 0x09
        case .register: return 0x0A
        case .regack: return 0x0B
        case .publish: return 0x0C
        case .puback: return 0x0D
        case .pubcomp: return 0x0E
        case .pubrec: return 0x0F
        case .pubrel: return 0x10
        case .subscribe: return 0x12
        case .suback: return 0x13
        case .unsubscribe: return 0x14
        case .unsuback: return 0x15
        case .pingreq: return 0x16
        case .pingresp: return 0x17
        case .disconnect: return 0x18
        case .willTopicUpdate: return 0x1A
        case .willTopicResponse: return 0x1B
        case .willMessageUpdate: return 0x1C
        case .willMessageResponse: return 0x1D
        }
    }

    // MARK: Decoding

    /// Decodes one whole datagram. Its length field (1 byte, or 0x01 and 2 bytes) must equal
    /// the datagram's size; anything else, an unknown type, or fields that do not fit the
    /// message are errors (the caller drops the datagram).
    public static func decode(_ datagram: ByteBuffer) throws -> SNMessage {
        var b = datagram
        guard let first = b.readInteger(as: UInt8.self) else { throw SNDecodeError.malformed("empty") }
        let length: Int
        if first == 0x01 {
            guard let l = b.readInteger(as: UInt16.self) else { throw SNDecodeError.malformed("truncated length") }
            length = Int(l)
            guard length >= 4 else { throw SNDecodeError.malformed("3-byte length below 4") }
        } else {
            length = Int(first)
            guard length >= 2 else { throw SNDecodeError.malformed("length below 2") }
        }
        guard length == datagram.readableBytes else {
            throw SNDecodeError.malformed("length \(length) does not match the datagram's \(datagram.readableBytes) bytes")
        }
        guard let type = b.readInteger(as: UInt8.self) else { throw SNDecodeError.malformed("no type") }
        let message = try decodeBody(type: type, &b)
        guard b.readableBytes == 0 else { throw SNDecodeError.malformed("bytes after the message") }
        return message
    }

    private static func decodeBody(type: UInt8, _ b: inout ByteBuffer) throws -> SNMessage {
        func u8() throws -> UInt8 {
            guard let v = b.readInteger(as: UInt8.self) else { throw SNDecodeError.malformed("truncated") }
            return v
        }
        func u16() throws -> UInt16 {
            guard let v = b.readInteger(as: UInt16.self) else { throw SNDecodeError.malformed("truncated") }
            return v
        }
        func rest() -> [UInt8] { b.readBytes(length: b.readableBytes) ?? [] }
        func text() throws -> String {
            let bytes = rest()
            guard let s = String(validating: bytes, as: UTF8.self) else { throw SNDecodeError.malformed("not UTF-8") }
            return s
        }
        switch type {
        case 0x00: return .advertise(gatewayId: try u8(), duration: try u16())
        case 0x01: return .searchGateway(radius: try u8())
        case 0x02: return .gatewayInfo(gatewayId: try u8(), address: rest())
        case 0x04:
            let flags = try SNFlags(byte: try u8())
            guard try u8() == 0x01 else { throw SNDecodeError.malformed("CONNECT protocol id is not 0x01") }
            let duration = try u16()
            let id = try text()
            return .connect(flags: flags, duration: duration, clientId: id)
        case 0x05:
            guard let rc = SNReturnCode(rawValue: try u8()) else { throw SNDecodeError.malformed("return code") }
            return .connack(rc)
        case 0x06: return .willTopicRequest
        case 0x07:
            if b.readableBytes == 0 { return .willTopic(flags: SNFlags(), topic: "") }
            let (f, t) = (try SNFlags(byte: try u8()), try text())
            // Flags without a topic name: read as the empty WILLTOPIC (no will), which is how
            // it encodes (found by fuzz-gateways: the flags did not survive a round trip).
            return .willTopic(flags: t.isEmpty ? SNFlags() : f, topic: t)
        case 0x08: return .willMessageRequest
        case 0x09: return .willMessage(rest())
        case 0x0A:
            let tid = try u16(), mid = try u16()
            return .register(topicId: tid, msgId: mid, topicName: try text())
        case 0x0B:
            let tid = try u16(), mid = try u16()
            guard let rc = SNReturnCode(rawValue: try u8()) else { throw SNDecodeError.malformed("return code") }
            return .regack(topicId: tid, msgId: mid, rc)
        case 0x0C:
            let flags = try SNFlags(byte: try u8())
            let tid = try u16(), mid = try u16()
            return .publish(flags: flags, topicId: tid, msgId: mid, data: b.readSlice(length: b.readableBytes)!)
        case 0x0D:
            let tid = try u16(), mid = try u16()
            guard let rc = SNReturnCode(rawValue: try u8()) else { throw SNDecodeError.malformed("return code") }
            return .puback(topicId: tid, msgId: mid, rc)
        case 0x0E: return .pubcomp(msgId: try u16())
        case 0x0F: return .pubrec(msgId: try u16())
        case 0x10: return .pubrel(msgId: try u16())
        case 0x12, 0x14:
            let flags = try SNFlags(byte: try u8())
            let mid = try u16()
            let topic: SNTopic
            switch flags.topicIdType {
            case .normal: topic = .name(try text())
            case .predefined: topic = .id(try u16())
            case .short:
                let bytes = rest()
                guard bytes.count == 2, let s = String(validating: bytes, as: UTF8.self) else {
                    throw SNDecodeError.malformed("short topic name is not 2 characters")
                }
                topic = .name(s)
            }
            return type == 0x12 ? .subscribe(flags: flags, msgId: mid, topic: topic) : .unsubscribe(flags: flags, msgId: mid, topic: topic)
        case 0x13:
            let flags = try SNFlags(byte: try u8())
            let tid = try u16(), mid = try u16()
            guard let rc = SNReturnCode(rawValue: try u8()) else { throw SNDecodeError.malformed("return code") }
            return .suback(flags: flags, topicId: tid, msgId: mid, rc)
        case 0x15: return .unsuback(msgId: try u16())
        case 0x16: return .pingreq(clientId: b.readableBytes == 0 ? nil : try text())
        case 0x17: return .pingresp
        case 0x18: return .disconnect(duration: b.readableBytes == 0 ? nil : try u16())
        case 0x1A:
            if b.readableBytes == 0 { return .willTopicUpdate(flags: SNFlags(), topic: "") }
            let (f, t) = (try SNFlags(byte: try u8()), try text())
            return .willTopicUpdate(flags: t.isEmpty ? SNFlags() : f, topic: t)  // as WILLTOPIC above
        case 0x1B:
            guard let rc = SNReturnCode(rawValue: try u8()) else { throw SNDecodeError.malformed("return code") }
            return .willTopicResponse(rc)
        case 0x1C: return .willMessageUpdate(rest())
        case 0x1D:
            guard let rc = SNReturnCode(rawValue: try u8()) else { throw SNDecodeError.malformed("return code") }
            return .willMessageResponse(rc)
        default: throw SNDecodeError.unknownType(type)
        }
    }

    // MARK: Encoding

    /// The datagram: the 1-byte length when the message fits 255 bytes, else 0x01 and 2 bytes.
    public func encoded() -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(typeByte)
        switch self {
        case .advertise(let g, let d): body.writeInteger(g); body.writeInteger(d)
        case .searchGateway(let r): body.writeInteger(r)
        case .gatewayInfo(let g, let a): body.writeInteger(g); body.writeBytes(a)
        case .connect(let f, let d, let id):
            body.writeInteger(f.byte); body.writeInteger(UInt8(1)); body.writeInteger(d); body.writeString(id)
        case .connack(let rc), .willTopicResponse(let rc), .willMessageResponse(let rc): body.writeInteger(rc.rawValue)
        case .willTopicRequest, .willMessageRequest, .pingresp: break
        case .willTopic(let f, let t), .willTopicUpdate(let f, let t):
            if !t.isEmpty { body.writeInteger(f.byte); body.writeString(t) }
        case .willMessage(let m), .willMessageUpdate(let m): body.writeBytes(m)
        case .register(let t, let m, let n): body.writeInteger(t); body.writeInteger(m); body.writeString(n)
        case .regack(let t, let m, let rc), .puback(let t, let m, let rc):
            body.writeInteger(t); body.writeInteger(m); body.writeInteger(rc.rawValue)
        case .publish(let f, let t, let m, let d):
            body.writeInteger(f.byte); body.writeInteger(t); body.writeInteger(m); body.writeImmutableBuffer(d)
        case .pubcomp(let m), .pubrec(let m), .pubrel(let m), .unsuback(let m): body.writeInteger(m)
        case .subscribe(let f, let m, let topic), .unsubscribe(let f, let m, let topic):
            body.writeInteger(f.byte); body.writeInteger(m)
            switch topic {
            case .name(let n): body.writeString(n)
            case .id(let i): body.writeInteger(i)
            }
        case .suback(let f, let t, let m, let rc):
            body.writeInteger(f.byte); body.writeInteger(t); body.writeInteger(m); body.writeInteger(rc.rawValue)
        case .pingreq(let id): if let id { body.writeString(id) }
        case .disconnect(let d): if let d { body.writeInteger(d) }
        }
        var out = ByteBuffer()
        if body.readableBytes + 1 <= 255 {
            out.writeInteger(UInt8(body.readableBytes + 1))
        } else {
            out.writeInteger(UInt8(1))
            out.writeInteger(UInt16(body.readableBytes + 3))
        }
        out.writeBuffer(&body)
        return out
    }
}
