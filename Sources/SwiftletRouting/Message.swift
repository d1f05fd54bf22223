import Foundation
import MQTTCodec
import NIOCore

/// An application message as routed: immutable once published, stored once and shared by
/// reference by every subscriber, queue and the retained store.
///
/// `wire` holds the message encoded as a QoS 0, non-retained PUBLISH for the publisher's
/// protocol family; `payload` is a slice of it. When the publisher sent exactly those bytes
/// (a plain QoS 0 PUBLISH) and they are at least `1 / maxPinnedRatio` of the receive
/// buffer's storage, `wire` is the received packet itself: no copy, no allocation, and the
/// receive buffer stays alive while the message does (docs/decisions/0005-forward-received-bytes.md).
/// Otherwise the message is encoded into a buffer of its own, as a small packet read among
/// many would pin a buffer many times its size.
public final class Message: @unchecked Sendable {
    public let topic: String
    public let payload: ByteBuffer
    public let qos: QoS
    public let retain: Bool
    /// 5.0 properties forwarded to subscribers (payload format, content type, response topic,
    /// correlation data, user properties). Never the topic alias, subscription identifiers or
    /// message expiry interval, which are per delivery.
    public let properties: Properties
    public let expiryInterval: UInt32?
    public let createdAt: NIODeadline
    /// Client id of the publisher, for No Local. Empty for broker-originated messages.
    public let origin: String
    /// Identity in the durable store (0: not stored). Set on the publisher's loop before the
    /// message is shared.
    public var storeId: Int64 = 0
    /// Wall-clock expiry (unix ms), for the durable store.
    public let expiryAtWall: Int64?
    /// The encoded QoS 0 PUBLISH for `wireVersion`'s family.
    public let wire: ByteBuffer
    public let wireIsV5: Bool

    /// A received packet is forwarded in place only when the receive buffer's storage is at
    /// most this many times the packet: what a held message pins is bounded by this factor of
    /// its own size.
    public static let maxPinnedRatio = 8

    /// `received`: the publisher's packet as read (`PublishPacket.received`), passed only when
    /// it is a QoS 0, non-retained PUBLISH with these topic, properties and payload; used as
    /// `wire` when it is the same bytes encoding would produce and pinning it is cheap.
    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties = Properties(),
                expiryInterval: UInt32? = nil, origin: String = "", v5Wire: Bool = false,
                now: NIODeadline, allocator: ByteBufferAllocator = ByteBufferAllocator(), received: ByteBuffer? = nil) {
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiryInterval = expiryInterval
        self.createdAt = now
        self.origin = origin
        self.wireIsV5 = v5Wire
        self.expiryAtWall = expiryInterval.map { Int64(Date().timeIntervalSince1970 * 1000) + Int64($0) * 1000 }
        var props = properties
        if let e = expiryInterval { props.items.append(.messageExpiryInterval(e)) }
        let packet = PublishPacket(topic: topic, properties: props, payload: payload)
        let version: ProtocolVersion = v5Wire ? .v5 : .v3_1_1
        let body = packet.bodyLength(version: version)
        let length = 1 + MQTTString.varIntLength(body) + body
        if let r = received, expiryInterval == nil, Self.forwardable(r, length: length) {
            self.wire = r
            self.payload = payload
            return
        }
        var b = allocator.buffer(capacity: length)
        Packet.publish(packet).encode(into: &b, version: version)
        self.wire = b
        self.payload = b.getSlice(at: b.writerIndex - payload.readableBytes, length: payload.readableBytes)!
    }

    /// True when `received` can stand as the wire of a message whose encoding is `length`
    /// bytes: a plain QoS 0 PUBLISH (first byte 0x30) of exactly that length (so its remaining
    /// length is minimally encoded, as a receiver requires), in storage at most
    /// `maxPinnedRatio` times its size.
    static func forwardable(_ received: ByteBuffer, length: Int) -> Bool {
        received.readableBytes == length
            && received.storageCapacity <= length &* maxPinnedRatio
            && received.getInteger(at: received.readerIndex, as: UInt8.self) == 0x30
    }

    /// Seconds of life left, nil when the message never expires, 0 when expired.
    public func remainingExpiry(now: NIODeadline) -> UInt32? {
        guard let e = expiryInterval else { return nil }
        let elapsed = (now - createdAt).nanoseconds / 1_000_000_000
        if elapsed >= Int64(e) { return 0 }
        return e - UInt32(elapsed)
    }

    public func isExpired(now: NIODeadline) -> Bool {
        remainingExpiry(now: now) == 0
    }

    /// True when `wire` is what a subscriber of `version` gets for a plain QoS 0 delivery.
    public func wireUsable(for version: ProtocolVersion, now: NIODeadline) -> Bool {
        guard (version == .v5) == wireIsV5 else { return false }
        guard let e = expiryInterval else { return true }
        return (now - createdAt).nanoseconds < 1_000_000_000 && e > 0
    }
}
