import NIOCore

/// One MQTT 5.0 property. The identifier decides the data type, so a value can never be of
/// the wrong type once decoded.
public enum Property: Sendable, Equatable {
    case payloadFormatIndicator(UInt8)
    case messageExpiryInterval(UInt32)
    case contentType(String)
    case responseTopic(String)
    case correlationData(ByteBuffer)
    case subscriptionIdentifier(Int)
    case sessionExpiryInterval(UInt32)
    case assignedClientIdentifier(String)
    case serverKeepAlive(UInt16)
    case authenticationMethod(String)
    case authenticationData(ByteBuffer)
    case requestProblemInformation(UInt8)
    case willDelayInterval(UInt32)
    case requestResponseInformation(UInt8)
    case responseInformation(String)
    case serverReference(String)
    case reasonString(String)
    case receiveMaximum(UInt16)
    case topicAliasMaximum(UInt16)
    case topicAlias(UInt16)
    case maximumQoS(UInt8)
    case retainAvailable(UInt8)
    case userProperty(String, String)
    case maximumPacketSize(UInt32)
    case wildcardSubscriptionAvailable(UInt8)
    case subscriptionIdentifierAvailable(UInt8)
    case sharedSubscriptionAvailable(UInt8)

    public var identifier: UInt8 {
        switch self {
        case .payloadFormatIndicator: return 0x01
        case .messageExpiryInterval: return 0x02
        case .contentType: return 0x03
        case .responseTopic: return 0x08
        case .correlationData: return 0x09
        case .subscriptionIdentifier: return 0x0B
        case .sessionExpiryInterval: return 0x11
        case .assignedClientIdentifier: return 0x12
        case .serverKeepAlive: return 0x13
        case .authenticationMethod: return 0x15
        case .authenticationData: return 0x16
        case .requestProblemInformation: return 0x17
        case .willDelayInterval: return 0x18
        case .requestResponseInformation: return 0x19
        case .responseInformation: return 0x1A
        case .serverReference: return 0x1C
        case .reasonString: return 0x1F
        case .receiveMaximum: return 0x21
        case .topicAliasMaximum: return 0x22
        case .topicAlias: return 0x23
        case .maximumQoS: return 0x24
        case .retainAvailable: return 0x25
        case .userProperty: return 0x26
        case .maximumPacketSize: return 0x27
        case .wildcardSubscriptionAvailable: return 0x28
        case .subscriptionIdentifierAvailable: return 0x29
        case .sharedSubscriptionAvailable: return 0x2A
        }
    }

    /// Bytes on the wire including the identifier byte.
    var encodedLength: Int {
        switch self {
        case .payloadFormatIndicator, .requestProblemInformation, .requestResponseInformation, .maximumQoS,
             .retainAvailable, .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable,
             .sharedSubscriptionAvailable:
            return 2
        case .serverKeepAlive, .receiveMaximum, .topicAliasMaximum, .topicAlias:
            return 3
        case .messageExpiryInterval, .sessionExpiryInterval, .willDelayInterval, .maximumPacketSize:
            return 5
        case .contentType(let s), .responseTopic(let s), .assignedClientIdentifier(let s),
             .authenticationMethod(let s), .responseInformation(let s), .serverReference(let s),
             .reasonString(let s):
            return 1 + MQTTString.fieldLength(s)
        case .correlationData(let b), .authenticationData(let b):
            return 3 + b.readableBytes
        case .subscriptionIdentifier(let v):
            return 1 + MQTTString.varIntLength(v)
        case .userProperty(let k, let v):
            return 1 + MQTTString.fieldLength(k) + MQTTString.fieldLength(v)
        }
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(identifier)
        switch self {
        case .payloadFormatIndicator(let v), .requestProblemInformation(let v), .requestResponseInformation(let v),
             .maximumQoS(let v), .retainAvailable(let v), .wildcardSubscriptionAvailable(let v),
             .subscriptionIdentifierAvailable(let v), .sharedSubscriptionAvailable(let v):
            buffer.writeInteger(v)
        case .serverKeepAlive(let v), .receiveMaximum(let v), .topicAliasMaximum(let v), .topicAlias(let v):
            buffer.writeInteger(v)
        case .messageExpiryInterval(let v), .sessionExpiryInterval(let v), .willDelayInterval(let v),
             .maximumPacketSize(let v):
            buffer.writeInteger(v)
        case .contentType(let s), .responseTopic(let s), .assignedClientIdentifier(let s),
             .authenticationMethod(let s), .responseInformation(let s), .serverReference(let s),
             .reasonString(let s):
            buffer.mqttWriteString(s)
        case .correlationData(let b), .authenticationData(let b):
            buffer.mqttWriteBinary(b)
        case .subscriptionIdentifier(let v):
            buffer.mqttWriteVarInt(v)
        case .userProperty(let k, let v):
            buffer.mqttWriteString(k)
            buffer.mqttWriteString(v)
        }
    }
}

/// Where a property list appears; decides which identifiers are allowed.
public enum PropertyContext: Sendable {
    case connect, connack, publish, will, ack, subscribe, suback, unsubscribe, unsuback, disconnect, auth

    /// Identifiers allowed in this context (MQTT 5.0 table 2-4).
    func allows(_ id: UInt8) -> Bool {
        switch id {
        case 0x26: return true
        case 0x1F:
            switch self {
            case .connack, .ack, .suback, .unsuback, .disconnect, .auth: return true
            default: return false
            }
        case 0x01, 0x02, 0x03, 0x08, 0x09: return self == .publish || self == .will
        case 0x0B: return self == .publish || self == .subscribe
        case 0x11: return self == .connect || self == .connack || self == .disconnect
        case 0x12, 0x13, 0x1A, 0x24, 0x25, 0x28, 0x29, 0x2A: return self == .connack
        case 0x15, 0x16: return self == .connect || self == .connack || self == .auth
        case 0x17, 0x19: return self == .connect
        case 0x18: return self == .will
        case 0x1C: return self == .connack || self == .disconnect
        case 0x21, 0x22, 0x27: return self == .connect || self == .connack
        case 0x23: return self == .publish
        default: return false
        }
    }
}

/// An ordered MQTT 5.0 property list. Stored as an array so the common empty list costs
/// nothing and user properties keep their order.
public struct Properties: Sendable, Equatable, ExpressibleByArrayLiteral {
    public var items: [Property]

    public init() { self.items = [] }
    public init(_ items: [Property]) { self.items = items }
    public init(arrayLiteral elements: Property...) { self.items = elements }

    public var isEmpty: Bool { items.isEmpty }

    /// Length of the property bytes, without the length prefix.
    public var encodedLength: Int {
        var n = 0
        for p in items { n += p.encodedLength }
        return n
    }

    /// Length including the variable byte integer prefix.
    public var encodedLengthWithPrefix: Int {
        let n = encodedLength
        return MQTTString.varIntLength(n) + n
    }

    public func write(into buffer: inout ByteBuffer) {
        buffer.mqttWriteVarInt(encodedLength)
        for p in items { p.write(into: &buffer) }
    }

    /// Reads a property length and the properties, validating identifiers for the context,
    /// duplicates (0x82) and value ranges (0x82).
    public static func read(from buffer: inout ByteBuffer, context: PropertyContext) throws -> Properties {
        let length = try buffer.mqttReadVarInt()
        guard var slice = buffer.readSlice(length: length) else {
            throw MQTTCodecError.malformed("property length \(length) exceeds the packet")
        }
        if length == 0 { return Properties() }
        var items: [Property] = []
        var seen: UInt64 = 0
        while slice.readableBytes > 0 {
            let id = try slice.mqttReadByte()
            guard context.allows(id) else {
                throw MQTTCodecError.malformed("property 0x\(String(id, radix: 16)) not allowed in \(context)")
            }
            let repeatable = id == 0x26 || (id == 0x0B && context == .publish)
            if !repeatable {
                let bit: UInt64 = 1 << UInt64(id)
                if seen & bit != 0 {
                    throw MQTTCodecError.protocolError("property 0x\(String(id, radix: 16)) included more than once")
                }
                seen |= bit
            }
            items.append(try readValue(id: id, from: &slice))
        }
        return Properties(items)
    }

    private static func flag(_ v: UInt8, _ name: String) throws -> UInt8 {
        guard v <= 1 else { throw MQTTCodecError.protocolError("\(name) must be 0 or 1, got \(v)") }
        return v
    }

    private static func readValue(id: UInt8, from b: inout ByteBuffer) throws -> Property {
        switch id {
        case 0x01: return .payloadFormatIndicator(try flag(try b.mqttReadByte(), "payload format indicator"))
        case 0x02: return .messageExpiryInterval(try b.mqttReadUInt32())
        case 0x03: return .contentType(try b.mqttReadString())
        case 0x08:
            let topic = try b.mqttReadString()
            guard !topic.isEmpty, !topic.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) else {
                throw MQTTCodecError.protocolError("response topic must be a valid topic name")
            }
            return .responseTopic(topic)
        case 0x09: return .correlationData(try b.mqttReadBinary())
        case 0x0B:
            let v = try b.mqttReadVarInt()
            guard v > 0 else { throw MQTTCodecError.protocolError("subscription identifier 0") }
            return .subscriptionIdentifier(v)
        case 0x11: return .sessionExpiryInterval(try b.mqttReadUInt32())
        case 0x12: return .assignedClientIdentifier(try b.mqttReadString())
        case 0x13: return .serverKeepAlive(try b.mqttReadUInt16())
        case 0x15: return .authenticationMethod(try b.mqttReadString())
        case 0x16: return .authenticationData(try b.mqttReadBinary())
        case 0x17: return .requestProblemInformation(try flag(try b.mqttReadByte(), "request problem information"))
        case 0x18: return .willDelayInterval(try b.mqttReadUInt32())
        case 0x19: return .requestResponseInformation(try flag(try b.mqttReadByte(), "request response information"))
        case 0x1A: return .responseInformation(try b.mqttReadString())
        case 0x1C: return .serverReference(try b.mqttReadString())
        case 0x1F: return .reasonString(try b.mqttReadString())
        case 0x21:
            let v = try b.mqttReadUInt16()
            guard v > 0 else { throw MQTTCodecError.protocolError("receive maximum 0") }
            return .receiveMaximum(v)
        case 0x22: return .topicAliasMaximum(try b.mqttReadUInt16())
        case 0x23: return .topicAlias(try b.mqttReadUInt16())
        case 0x24: return .maximumQoS(try flag(try b.mqttReadByte(), "maximum QoS"))
        case 0x25: return .retainAvailable(try flag(try b.mqttReadByte(), "retain available"))
        case 0x26:
            let k = try b.mqttReadString()
            let v = try b.mqttReadString()
            return .userProperty(k, v)
        case 0x27:
            let v = try b.mqttReadUInt32()
            guard v > 0 else { throw MQTTCodecError.protocolError("maximum packet size 0") }
            return .maximumPacketSize(v)
        case 0x28: return .wildcardSubscriptionAvailable(try flag(try b.mqttReadByte(), "wildcard subscription available"))
        case 0x29: return .subscriptionIdentifierAvailable(try flag(try b.mqttReadByte(), "subscription identifier available"))
        case 0x2A: return .sharedSubscriptionAvailable(try flag(try b.mqttReadByte(), "shared subscription available"))
        default: throw MQTTCodecError.malformed("unknown property identifier 0x\(String(id, radix: 16))")
        }
    }
}

// MARK: - Typed accessors

extension Properties {
    @inline(__always)
    private func first<T>(_ pick: (Property) -> T?) -> T? {
        for p in items { if let v = pick(p) { return v } }
        return nil
    }

    public var payloadFormatIndicator: UInt8? { first { if case .payloadFormatIndicator(let v) = $0 { return v }; return nil } }
    public var messageExpiryInterval: UInt32? { first { if case .messageExpiryInterval(let v) = $0 { return v }; return nil } }
    public var contentType: String? { first { if case .contentType(let v) = $0 { return v }; return nil } }
    public var responseTopic: String? { first { if case .responseTopic(let v) = $0 { return v }; return nil } }
    public var correlationData: ByteBuffer? { first { if case .correlationData(let v) = $0 { return v }; return nil } }
    public var subscriptionIdentifiers: [Int] {
        items.compactMap { if case .subscriptionIdentifier(let v) = $0 { return v }; return nil }
    }
    public var sessionExpiryInterval: UInt32? { first { if case .sessionExpiryInterval(let v) = $0 { return v }; return nil } }
    public var assignedClientIdentifier: String? { first { if case .assignedClientIdentifier(let v) = $0 { return v }; return nil } }
    public var serverKeepAlive: UInt16? { first { if case .serverKeepAlive(let v) = $0 { return v }; return nil } }
    public var authenticationMethod: String? { first { if case .authenticationMethod(let v) = $0 { return v }; return nil } }
    public var authenticationData: ByteBuffer? { first { if case .authenticationData(let v) = $0 { return v }; return nil } }
    public var requestProblemInformation: UInt8? { first { if case .requestProblemInformation(let v) = $0 { return v }; return nil } }
    public var willDelayInterval: UInt32? { first { if case .willDelayInterval(let v) = $0 { return v }; return nil } }
    public var requestResponseInformation: UInt8? { first { if case .requestResponseInformation(let v) = $0 { return v }; return nil } }
    public var responseInformation: String? { first { if case .responseInformation(let v) = $0 { return v }; return nil } }
    public var serverReference: String? { first { if case .serverReference(let v) = $0 { return v }; return nil } }
    public var reasonString: String? { first { if case .reasonString(let v) = $0 { return v }; return nil } }
    public var receiveMaximum: UInt16? { first { if case .receiveMaximum(let v) = $0 { return v }; return nil } }
    public var topicAliasMaximum: UInt16? { first { if case .topicAliasMaximum(let v) = $0 { return v }; return nil } }
    public var topicAlias: UInt16? { first { if case .topicAlias(let v) = $0 { return v }; return nil } }
    public var maximumQoS: UInt8? { first { if case .maximumQoS(let v) = $0 { return v }; return nil } }
    public var retainAvailable: UInt8? { first { if case .retainAvailable(let v) = $0 { return v }; return nil } }
    public var maximumPacketSize: UInt32? { first { if case .maximumPacketSize(let v) = $0 { return v }; return nil } }
    public var userProperties: [(String, String)] {
        items.compactMap { if case .userProperty(let k, let v) = $0 { return (k, v) }; return nil }
    }

    /// Removes every property with this identifier.
    public mutating func remove(_ identifier: UInt8) {
        items.removeAll { $0.identifier == identifier }
    }
}
