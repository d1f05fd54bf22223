import SwiftletRouting
import MQTTCodec
import NIOCore
import SwiftletIPC

/// The nine hook points (Protocol/SPEC.md 3.4). Each costs one relaxed atomic load when no
/// sidecar listens; fields are built only when one does.
extension MQTTConnectionHandler {
    var hooks: HookBus { broker.sidecars.hooks }


    func hookConnected(keepAlive: Int) {
        hooks.emit(.clientConnected) {
            [IPCField("client_id", clientId), IPCField("username", username ?? ""), IPCField("peer", peer),
             IPCField("protocol", "\(version.rawValue)"), IPCField("keepalive", "\(keepAlive)"),
             IPCField("clean_start", cleanStart ? "true" : "false")]
        }
    }

    func hookDisconnected(reason: String) {
        hooks.emit(.clientDisconnected) {
            [IPCField("client_id", clientId), IPCField("username", username ?? ""), IPCField("reason", reason)]
        }
    }

    func hookSubscribe(_ s: SubscribePacket) {
        guard hooks.wants(.clientSubscribe) else { return }
        for sub in s.subscriptions {
            hooks.emit(.clientSubscribe) {
                [IPCField("client_id", clientId), IPCField("username", username ?? ""), IPCField("topic", sub.filter),
                 IPCField("qos", "\(sub.qos.rawValue)")]
            }
        }
    }

    func hookSubscribed(filter: String, qos: QoS) {
        hooks.emit(.sessionSubscribed) {
            [IPCField("client_id", clientId), IPCField("topic", filter), IPCField("qos", "\(qos.rawValue)")]
        }
    }

    func hookUnsubscribe(_ filters: [String]) {
        guard hooks.wants(.clientUnsubscribe) else { return }
        for f in filters {
            hooks.emit(.clientUnsubscribe) {
                [IPCField("client_id", clientId), IPCField("username", username ?? ""), IPCField("topic", f)]
            }
        }
    }

    func hookUnsubscribed(filter: String) {
        hooks.emit(.sessionUnsubscribed) { [IPCField("client_id", clientId), IPCField("topic", filter)] }
    }

    func hookPublish(_ m: Message) {
        hooks.emit(.messagePublish) {
            [IPCField("client_id", clientId), IPCField("username", username ?? ""), IPCField("topic", m.topic),
             IPCField("qos", "\(m.qos.rawValue)"), IPCField("retain", m.retain ? "true" : "false"),
             IPCField("payload", m.payload)]
        }
    }

    func hookDelivered(_ d: Delivery) {
        hooks.emit(.messageDelivered) {
            [IPCField("client_id", clientId), IPCField("from", d.message.origin), IPCField("topic", d.message.topic),
             IPCField("qos", "\(d.qos.rawValue)")]
        }
    }

    func hookAcked(_ d: Delivery, packetId: UInt16) {
        hooks.emit(.messageAcked) {
            [IPCField("client_id", clientId), IPCField("topic", d.message.topic), IPCField("packet_id", "\(packetId)")]
        }
    }

    /// The synchronous message.publish hook (SPEC 3.5): the sidecar may let the message pass,
    /// replace it or drop it, within its budget; no answer in time means "pass unchanged".
    /// Later packets of this connection wait meanwhile, so order is kept.
    func withPublishFilter(_ p: PublishPacket, topic: String, _ body: @escaping (PublishPacket?, String) -> Void) {
        guard hooks.hasPublishFilter, let (conn, budget) = hooks.publishFilter.withLockedValue({ $0 }) else {
            return body(p, topic)
        }
        var userProps: [IPCField] = []
        for case .userProperty(let k, let v) in p.properties.items { userProps.append(IPCField(k, v)) }
        let msg = IPCPublishMessage(topic: topic, payload: p.payload, qos: p.qos.rawValue, retain: p.retain,
                                    userProperties: userProps)
        paused = true
        conn.request(.hookPublish(client: SidecarProvider.ipcClient(clientInfo), message: msg), timeout: budget)
            .hop(to: eventLoop)
            .whenComplete { [self] result in
                paused = false
                guard state == .connected else { return }
                switch result {
                case .success(.hookPublishReply(2, _)):
                    body(nil, topic)
                case .success(.hookPublishReply(1, let m?)) where checkTopicName(m.topic) == nil
                                                                    && (try? Topic.validateName(m.topic)) != nil:
                    // The QoS stays the client's: it decides the acknowledgement flow.
                    var q = p
                    q.received = nil  // changed: the received bytes are no longer this message
                    q.payload = m.payload
                    q.retain = m.retain
                    q.properties.items.removeAll { if case .userProperty = $0 { return true } else { return false } }
                    for f in m.userProperties { q.properties.items.append(.userProperty(f.key, f.text)) }
                    body(q, m.topic)
                default:
                    if case .failure(let e) = result {
                        logger.debug("message.publish hook passed the message unchanged", metadata: ["error": "\(e)"])
                    }
                    body(p, topic)
                }
                resumePending()
            }
    }
}
