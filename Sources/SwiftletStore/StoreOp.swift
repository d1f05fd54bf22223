import SwiftletConfig
import SwiftletRouting
import MQTTCodec

/// One change to durable state. Built on event loops, applied in arrival order by the
/// store's writer thread.
public enum StoreOp {
    /// A persistent session exists (connected): its expiry and protocol level.
    case session(clientId: String, expiry: UInt32, version: UInt8)
    /// A session ended: drop it with its subscriptions, messages and packet ids.
    case sessionGone(clientId: String)
    /// The connection of a persistent session closed at `at` (unix ms), maybe leaving a
    /// delayed will to publish at `willAt`.
    case sessionOffline(clientId: String, at: Int64, expiry: UInt32, will: Will?, willAt: Int64)
    case willDone(clientId: String)
    case subscribe(clientId: String, filter: String, options: SubscriptionOptions)
    case unsubscribe(clientId: String, filter: String)
    /// A QoS 1/2 message for a persistent session.
    case enqueue(clientId: String, message: Message, qos: QoS, retainFlag: Bool, subscriptionIds: [Int])
    /// Sent with this packet id (awaiting PUBACK / PUBREC).
    case sent(clientId: String, messageId: Int64, packetId: UInt16)
    /// PUBREC received: awaiting PUBCOMP.
    case released(clientId: String, messageId: Int64)
    /// Acknowledged, expired or dropped: forget it.
    case done(clientId: String, messageId: Int64)
    /// Inbound QoS 2 packet id routed and awaiting PUBREL.
    case awaitRel(clientId: String, packetId: UInt16)
    case rel(clientId: String, packetId: UInt16)
    case retain(Message)
    case unretain(topic: String)
}

extension StoreOp {
    private struct Key: Hashable {
        var clientId: String
        var messageId: Int64
    }

    /// `ops` without the messages a session got and finished within the same batch: their
    /// enqueue, sent, released and done cancel out (a persistent subscriber that acknowledges
    /// within the group commit costs the store nothing, as in memory-first brokers). Applying
    /// the result leaves the store as applying `ops` would.
    public static func coalesced(_ ops: [StoreOp]) -> [StoreOp] {
        var enqueued = Set<Key>()
        for op in ops {
            if case .enqueue(let c, let m, _, _, _) = op { enqueued.insert(Key(clientId: c, messageId: m.storeId)) }
        }
        guard !enqueued.isEmpty else { return ops }
        var finished = Set<Key>()
        for op in ops {
            if case .done(let c, let mid) = op, enqueued.contains(Key(clientId: c, messageId: mid)) {
                finished.insert(Key(clientId: c, messageId: mid))
            }
        }
        guard !finished.isEmpty else { return ops }
        return ops.filter { op in
            switch op {
            case .enqueue(let c, let m, _, _, _): return !finished.contains(Key(clientId: c, messageId: m.storeId))
            case .sent(let c, let mid, _), .released(let c, let mid), .done(let c, let mid):
                return !finished.contains(Key(clientId: c, messageId: mid))
            default: return true
            }
        }
    }
}
