/// Why a byte stream could not be decoded. Every case maps to exactly one wire consequence
/// (see `reasonCode`): the broker sends DISCONNECT with that code to a 5.0 client, or closes
/// the connection of a 3.x client.
public enum MQTTCodecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes violate the packet grammar (0x81).
    case malformed(String)
    /// The bytes are well formed but break a protocol rule (0x82).
    case protocolError(String)
    /// The packet is larger than the receiver's maximum (0x95).
    case packetTooLarge(size: Int, limit: Int)
    /// CONNECT names a protocol level we do not speak (CONNACK 0x84 / 0x01).
    case unsupportedProtocolVersion(UInt8)
    /// CONNECT names an unknown protocol (close without CONNACK for 3.x).
    case unknownProtocolName(String)
    /// A PUBLISH topic name is not valid (0x90).
    case topicNameInvalid(String)
    /// A topic alias is outside the allowed range (0x94).
    case topicAliasInvalid(String)

    public var reasonCode: ReasonCode {
        switch self {
        case .malformed: return .malformedPacket
        case .protocolError: return .protocolError
        case .packetTooLarge: return .packetTooLarge
        case .unsupportedProtocolVersion: return .unsupportedProtocolVersion
        case .unknownProtocolName: return .unsupportedProtocolVersion
        case .topicNameInvalid: return .topicNameInvalid
        case .topicAliasInvalid: return .topicAliasInvalid
        }
    }

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed packet: \(s)"
        case .protocolError(let s): return "protocol error: \(s)"
        case .packetTooLarge(let size, let limit): return "packet of \(size) bytes exceeds the maximum of \(limit)"
        case .unsupportedProtocolVersion(let v): return "unsupported protocol level \(v)"
        case .unknownProtocolName(let n): return "unknown protocol name \(n.debugDescription)"
        case .topicNameInvalid(let s): return "invalid topic name: \(s)"
        case .topicAliasInvalid(let s): return "invalid topic alias: \(s)"
        }
    }
}

/// A CONNECT that could not be decoded, with the protocol level when it could be read, so
/// that a 5.0 client gets CONNACK with the reason code and a 3.x client a plain close.
public struct ConnectDecodingError: Error, Sendable, CustomStringConvertible {
    public var version: ProtocolVersion?
    public var underlying: MQTTCodecError
    public var description: String { "invalid CONNECT: \(underlying)" }

    public init(version: ProtocolVersion?, underlying: MQTTCodecError) {
        self.version = version
        self.underlying = underlying
    }
}
