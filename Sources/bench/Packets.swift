import MQTTCodec
import NIOCore

/// What one client connection does.
struct ClientConfig: Sendable {
    var clientId: String
    var version: ProtocolVersion
    var username: String?
    var password: String?
    var keepalive: Int
    var connectTimeout: Double
    /// Topic filter to subscribe to after CONNACK (subscribers only).
    var subscribe: String?
    var qos: QoS = .atMostOnce
    var publish: PublishConfig?
    /// Keep the session (clean session off; 5.0: session expiry of an hour).
    var persistent = false
    /// Many filters to subscribe to after CONNACK (background subscriptions), instead of `subscribe`.
    var subscribeMany: SubscriptionBatch?
    /// Retained messages to publish (QoS 1, retain) after CONNACK before becoming ready.
    var retainedLoad: RetainedLoad?
    /// PUBLISH packets to receive before `MQTTClient.allReceived` completes.
    var receiveTarget: Int?
}

/// `count` filters, made by `filter(n)` for n in `first..<first + count`, sent `perPacket`
/// to a SUBSCRIBE with at most `window` SUBSCRIBEs awaiting their SUBACK.
struct SubscriptionBatch: Sendable {
    var first: Int
    var count: Int
    var perPacket = 100
    var window = 8
    var filter: @Sendable (Int) -> String
}

/// Retained messages on `topic(n)` for n in `first..<first + count`, QoS 1 with at most
/// `window` awaiting their PUBACK.
struct RetainedLoad: Sendable {
    var first: Int
    var count: Int
    var payloadSize: Int
    var window = 1000
    var topic: @Sendable (Int) -> String
}

/// A publisher's traffic.
struct PublishConfig: Sendable {
    var index: Int
    var topic: String
    var payloadSize: Int
    /// Messages per second for this publisher; 0 is closed loop.
    var rate: Double
    /// Unacknowledged QoS 1/2 messages allowed (0: unlimited).
    var inflight: Int
}

/// Byte layout of the benchmark payload: [timestamp ns u64][publisher u32][sequence u32][zeros].
enum BenchPayload {
    static let timestampOffset = 0
    static let publisherOffset = 8
    static let sequenceOffset = 12
    static let minimumSize = 16
}

/// Packets the client writes, encoded with MQTTCodec once and patched per message.
enum ClientPackets {
    static func connect(_ c: ClientConfig) -> Packet {
        var props = Properties()
        if c.version == .v5 {
            props.items.append(.receiveMaximum(65_535))
            if c.persistent { props.items.append(.sessionExpiryInterval(3600)) }
        }
        var password: ByteBuffer?
        if let p = c.password {
            var b = ByteBufferAllocator().buffer(capacity: p.utf8.count)
            b.writeString(p)
            password = b
        }
        return .connect(ConnectPacket(protocolVersion: c.version, cleanStart: !c.persistent, keepAlive: UInt16(clamping: c.keepalive),
                                      properties: props, clientId: c.clientId, username: c.username, password: password))
    }

    static func subscribe(filter: String, qos: QoS) -> Packet {
        .subscribe(SubscribePacket(packetId: 1, subscriptions: [TopicSubscription(filter: filter, qos: qos)]))
    }

    static func subscribe(filters: [String], qos: QoS, packetId: UInt16) -> Packet {
        .subscribe(SubscribePacket(packetId: packetId, subscriptions: filters.map { TopicSubscription(filter: $0, qos: qos) }))
    }

    /// A QoS 1 PUBLISH with the retain flag.
    static func retainedPublish(topic: String, payloadSize: Int, packetId: UInt16, version: ProtocolVersion) -> Packet {
        var payload = ByteBufferAllocator().buffer(capacity: payloadSize)
        payload.writeRepeatingByte(0, count: payloadSize)
        return .publish(PublishPacket(qos: .atLeastOnce, retain: true, topic: topic, packetId: packetId, payload: payload))
    }

    /// A complete PUBLISH with a zero payload of `size` bytes, plus where the packet id and
    /// the payload start inside it, so each message is one copy and two or three stores.
    static func publishTemplate(topic: String, qos: QoS, size: Int, version: ProtocolVersion)
        -> (template: ByteBuffer, packetIdOffset: Int?, payloadOffset: Int)
    {
        var payload = ByteBufferAllocator().buffer(capacity: size)
        payload.writeRepeatingByte(0, count: size)
        let p = PublishPacket(qos: qos, topic: topic, packetId: qos == .atMostOnce ? nil : 1, payload: payload)
        let packet = Packet.publish(p)
        let buffer = packet.encoded(version: version)
        let payloadOffset = buffer.readableBytes - size
        let headerLength = p.headerLength(version: version)
        precondition(headerLength == payloadOffset)
        // The packet id sits right after the topic; in 5.0 the (empty) properties follow it.
        let idOffset: Int? = qos == .atMostOnce ? nil : payloadOffset - 2 - (version == .v5 ? 1 : 0)
        return (buffer, idOffset, payloadOffset)
    }

    static let pingreq: [UInt8] = [0xC0, 0x00]
    static let disconnect: [UInt8] = [0xE0, 0x00]

    /// PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70) with success: 4 bytes in
    /// every version (5.0 omits reason code and properties when both are defaults).
    @inline(__always)
    static func writeAck(_ first: UInt8, id: UInt16, into b: inout ByteBuffer) {
        b.writeInteger(UInt32(first) << 24 | 0x02 << 16 | UInt32(id))
    }
}
