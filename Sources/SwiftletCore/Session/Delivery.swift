import SwiftletRouting
import MQTTCodec
import NIOCore

/// One message on its way to one session, with the per-subscription view of it.
public struct Delivery {
    public let session: Session
    public let message: Message
    public var qos: QoS
    public var retainFlag: Bool
    public var subscriptionIds: [Int]
    /// True when this delivery is recorded in the durable store (persistent session, QoS > 0).
    public var stored = false

    public init(session: Session, message: Message, qos: QoS, retainFlag: Bool, subscriptionIds: [Int], stored: Bool = false) {
        self.session = session
        self.message = message
        self.qos = qos
        self.retainFlag = retainFlag
        self.subscriptionIds = subscriptionIds
        self.stored = stored
    }
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
