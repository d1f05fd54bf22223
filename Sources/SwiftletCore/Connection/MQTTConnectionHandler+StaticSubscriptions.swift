import SwiftletRouting
import SwiftletAuth
import MQTTCodec

extension MQTTConnectionHandler {
    /// Subscriptions the authenticating provider returned with its allow (Protocol/SPEC.md 8,
    /// emqttd_auth_redis's `subcmd`). Called once, right after CONNACK; they go through the
    /// client's own SUBSCRIBE path (hooks, ACL per filter, maximum QoS, retained messages,
    /// persistence, ctl listings) as a SUBSCRIBE with packet id 0, which has no SUBACK. An
    /// invalid or refused filter is left out and logged; the client stays connected.
    func applyStaticSubscriptions(_ subs: [StaticSubscription]) {
        guard !subs.isEmpty, state == .connected, session != nil else { return }
        var valid: [TopicSubscription] = []
        for s in subs {
            guard let qos = QoS(rawValue: min(s.qos, 2)), ParsedFilter.parse(s.filter) != nil else {
                logger.warning("static subscription with an invalid topic filter left out",
                               metadata: ["mqtt.topic": "\(s.filter.debugDescription)"])
                continue
            }
            valid.append(TopicSubscription(filter: s.filter, qos: qos))
        }
        guard !valid.isEmpty else { return }
        logger.debug("applying static subscriptions", metadata: ["mqtt.topics": "\(valid.map(\.filter))"])
        let packet = Packet.subscribe(SubscribePacket(packetId: 0, subscriptions: valid))
        // Packets the client sent before this point are already being handled; an answer
        // still awaited holds back what follows, static subscriptions first.
        if paused { pending.insert(packet, at: 0) } else { handle(packet) }
    }
}
