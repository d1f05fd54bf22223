import MQTTCodec
import NIOCore

/// One message on its way to one session, with the per-subscription view of it.
public struct Delivery {
    public let session: Session
    public let message: Message
    public var qos: QoS
    public var retainFlag: Bool
    public var subscriptionIds: [Int]
}

/// An outbound QoS 1/2 message awaiting acknowledgement.
public struct InflightEntry {
    public enum Phase { case awaitingAck, awaitingComp }
    public var packetId: UInt16
    public var delivery: Delivery
    public var phase: Phase
    public var sentAt: NIODeadline
    var seq: UInt64
}
