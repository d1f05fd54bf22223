import Foundation
import MQTTCodec
import NIOCore

/// An application message as routed: immutable once published, stored once and shared by
/// reference by every subscriber, queue and the retained store.
///
/// `wire` holds the message encoded as a QoS 0, non-retained PUBLISH for the publisher's
/// protocol family; `payload` is a slice of it, so the message owns exactly one buffer and
/// never pins a connection's receive buffer.
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

    public init(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool, properties: Properties = Properties(),
                expiryInterval: UInt32? = nil, origin: String = "", v5Wire: Bool = false,
                now: NIODeadline, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
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
        var b = allocator.buffer(capacity: 1 + MQTTString.varIntLength(body) + body)
        Packet.publish(packet).encode(into: &b, version: version)
        self.wire = b
        self.payload = b.getSlice(at: b.writerIndex - payload.readableBytes, length: payload.readableBytes)!
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
