import NIOCore

/// Protocol versions this implementation speaks (Protocol/SPEC.md): 1, 2 (2 = 1 + gateway
/// sessions) and 3 (3 = 2 + subscriptions in an authentication answer).
public enum IPCVersion {
    /// The highest version spoken.
    public static let current: UInt16 = 3
    /// The lowest version spoken.
    public static let minimum: UInt16 = 1
    /// The first version with gateway sessions (GW_OPEN, GW_OPENED, GW_DATA, GW_CLOSE).
    public static let gateway: UInt16 = 2
    /// The first version with AUTHN_REPLY_SUBS (SPEC 8).
    public static let subscriptions: UInt16 = 3
    /// Maximum frame size before the handshake settles one (SPEC 2).
    public static let handshakeMaxFrame: UInt32 = 65_536
}

/// Frame kinds (SPEC 3).
public enum IPCKind: UInt8, Sendable, CaseIterable {
    case hello = 0x01, welcome = 0x02, register = 0x03, registered = 0x04
    case ping = 0x05, pong = 0x06, error = 0x07, goodbye = 0x08
    case authnRequest = 0x10, authnReply = 0x11, authzRequest = 0x12, authzReply = 0x13
    /// Version 3: an authentication answer with subscriptions (SPEC 8).
    case authnReplySubs = 0x14
    case hookEvents = 0x20, hookPublish = 0x21, hookPublishReply = 0x22
    case ctlRequest = 0x30, ctlReply = 0x31
    case invalidate = 0x40
    /// Version 2: gateway sessions (SPEC 7).
    case gwOpen = 0x50, gwOpened = 0x51, gwData = 0x52, gwClose = 0x53

    /// Replies are matched to an outstanding request by id.
    public var isReply: Bool {
        switch self {
        case .welcome, .registered, .pong, .error, .authnReply, .authzReply, .hookPublishReply, .ctlReply, .gwOpened,
             .authnReplySubs: return true
        default: return false
        }
    }

    /// The protocol version that introduced this kind; in a connection of an older version
    /// the kind is unknown (SPEC 3: a protocol violation).
    public var version: UInt16 {
        switch self {
        case .gwOpen, .gwOpened, .gwData, .gwClose: return IPCVersion.gateway
        case .authnReplySubs: return IPCVersion.subscriptions
        default: return 1
        }
    }
}

/// Why bytes from a peer are not a valid frame. Each closes that connection only.
public enum IPCError: Error, Equatable, CustomStringConvertible, Sendable {
    case frameTooLarge(UInt32, max: UInt32)
    case frameTooSmall(UInt32)
    case unknownKind(UInt8)
    case malformed(String)

    public var description: String {
        switch self {
        case .frameTooLarge(let n, let max): return "frame length \(n) exceeds the maximum \(max)"
        case .frameTooSmall(let n): return "frame length \(n) below 5"
        case .unknownKind(let k): return "unknown frame kind 0x\(String(k, radix: 16))"
        case .malformed(let s): return "malformed frame: \(s)"
        }
    }
}

/// One frame: kind, request id and the raw body.
public struct IPCFrame: Sendable, Equatable {
    public var kind: IPCKind
    public var requestId: UInt32
    public var body: ByteBuffer

    public init(kind: IPCKind, requestId: UInt32, body: ByteBuffer = ByteBuffer()) {
        self.kind = kind
        self.requestId = requestId
        self.body = body
    }

    public func encode(into out: inout ByteBuffer) {
        out.writeInteger(UInt32(5 + body.readableBytes))
        out.writeInteger(kind.rawValue)
        out.writeInteger(requestId)
        var b = body
        out.writeBuffer(&b)
    }

    public var encoded: ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(9 + body.readableBytes)
        encode(into: &b)
        return b
    }
}

/// Splits a byte stream into frames; checks the length before waiting for the body.
public struct IPCFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = IPCFrame
    public var maxFrame: UInt32

    public init(maxFrame: UInt32 = IPCVersion.handshakeMaxFrame) { self.maxFrame = maxFrame }

    public mutating func decode(buffer: inout ByteBuffer) throws -> IPCFrame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        if length < 5 { throw IPCError.frameTooSmall(length) }
        if length > maxFrame { throw IPCError.frameTooLarge(length, max: maxFrame) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let rawKind = buffer.readInteger(as: UInt8.self)!
        let id = buffer.readInteger(as: UInt32.self)!
        let body = buffer.readSlice(length: Int(length) - 5)!
        guard let kind = IPCKind(rawValue: rawKind) else { throw IPCError.unknownKind(rawKind) }
        return IPCFrame(kind: kind, requestId: id, body: body)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> IPCFrame? {
        let f = try decode(buffer: &buffer)
        if f == nil && seenEOF && buffer.readableBytes > 0 {
            throw IPCError.malformed("connection closed inside a frame (\(buffer.readableBytes) bytes)")
        }
        return f
    }
}

/// Writes frames.
public struct IPCFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = IPCFrame
    public init() {}
    public func encode(data: IPCFrame, out: inout ByteBuffer) throws { data.encode(into: &out) }
}
