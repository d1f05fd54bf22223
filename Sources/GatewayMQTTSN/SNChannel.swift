import DequeModule
import GatewayKit
import MQTTCodec
import NIOCore

/// What one MQTT-SN client needs of the gateway's configuration.
public struct SNChannelConfig: Sendable {
    public var gatewayId: UInt8 = 1
    /// `[mqttsn.predefined]`: topic id => topic name, the same for every client.
    public var predefined: [UInt16: String] = [:]
    /// MQTT-SN's CONNECT has no credentials: every client is authenticated by the broker with
    /// these (and its client id and address); nil: no user name.
    public var username: String?
    public var password: String?
    /// Retransmission of an unacknowledged QoS 1/2 PUBLISH, REGISTER or PUBREL (T_retry, N_retry).
    public var retryIntervalMs = 5000
    public var maxRetries = 4
    /// Topic names one client may register (REGISTER and SUBSCRIBE by name).
    public var maxTopics = 256
    /// Messages waiting for one client (asleep, or behind one in flight); QoS 0 ones beyond
    /// are dropped and counted (QoS 1/2 are bounded by the receive maximum).
    public var maxQueued = 128
    public var receiveMaximum: UInt16 = 16
    /// Session expiry asked of the broker for a client that connects without clean session.
    public var sessionExpiry: UInt32 = 7200
    /// Largest payload sent to a client in one datagram; larger messages are dropped and counted.
    public var maxPayload = 65_000

    public init() {}

    func predefinedId(for name: String) -> UInt16? {
        predefined.first(where: { $0.value == name })?.key
    }
}

/// The MQTT-SN 1.2 protocol of one client address, as a state machine: datagrams, the
/// broker's packets and the time go in; datagrams for the client, the broker session's
/// packets and its end come out.
public struct SNChannel: Sendable {
    public enum Action: Sendable, Equatable {
        case send(SNMessage)
        /// Open the broker session with this CONNECT (a running one is closed first).
        case openSession(Packet)
        case toBroker(Packet)
        /// End the broker session (GW_CLOSE after what was sent; without a DISCONNECT in the
        /// stream the broker publishes the will).
        case closeSession(String)
        /// The client is gone: drop its state.
        case forget(String)
    }

    public enum Phase: Sendable, Equatable {
        case idle, awaitingWillTopic, awaitingWillMessage, connecting, active, asleep, awake, gone
    }

    struct SNWill: Sendable, Equatable {
        var topic: String
        var payload: [UInt8]
        var qos: QoS
        var retain: Bool
    }

    enum Waiter: Sendable {
        case puback(topicId: UInt16, msgId: UInt16)
        case suback(flags: SNFlags, topicId: UInt16, msgId: UInt16)
        case unsuback(msgId: UInt16)
    }

    enum Stage: Sendable, Equatable { case registering, awaitingAck, awaitingRec, awaitingComp }

    struct Inflight: Sendable {
        var message: PublishPacket
        var msgId: UInt16
        var topicId: UInt16
        var idType: SNTopicIdType
        var stage: Stage
        var sentAt: UInt64
        var retries: Int
        var acknowledged: Bool = false
    }

    public let config: SNChannelConfig
    public private(set) var phase: Phase = .idle
    public private(set) var clientId = ""
    /// Messages for the client dropped (queue full, too large).
    public private(set) var dropped = 0
    public private(set) var registry: SNTopicRegistry

    private var broker = BrokerClient()
    private var pendingConnect: (flags: SNFlags, duration: UInt16, clientId: String)?
    private var will: SNWill?
    private var willChanged = false
    private var keepAliveNs: UInt64 = 0
    private var lastHeard: UInt64 = 0
    private var sleepUntil: UInt64 = 0
    private var waiters: [BrokerClient.Token: Waiter] = [:]
    private var nextToken: BrokerClient.Token = 1
    private var receivedQoS2: Set<UInt16> = []
    private var queue: Deque<PublishPacket> = []
    private var inflight: Inflight?
    private var nextMsgId: UInt16 = 0
    private var hasSession = false
    private var willExchangeStarted: UInt64 = 0

    public init(config: SNChannelConfig) {
        self.config = config
        self.registry = SNTopicRegistry(capacity: config.maxTopics)
    }

    public var nextDeadline: UInt64? {
        switch phase {
        case .awaitingWillTopic, .awaitingWillMessage:
            return willExchangeStarted + retryNs * UInt64(config.maxRetries + 1)
        case .active, .awake, .connecting:
            var d: UInt64?
            if keepAliveNs > 0 { d = lastHeard + keepAliveNs * 3 / 2 }
            if let i = inflight { d = min(d ?? .max, i.sentAt + retryNs) }
            return d
        case .asleep:
            return sleepUntil
        case .idle, .gone:
            return nil
        }
    }

    private var retryNs: UInt64 { UInt64(config.retryIntervalMs) * 1_000_000 }

    // MARK: The client's datagrams

    public mutating func receive(_ message: SNMessage, now: UInt64) -> [Action] {
        guard phase != .gone else { return [] }
        lastHeard = now
        var out: [Action] = []
        switch message {
        case .connect(let flags, let duration, let id):
            connect(flags: flags, duration: duration, clientId: id, now: now, into: &out)
        case .willTopic(let flags, let topic):
            guard phase == .awaitingWillTopic else { break }
            if topic.isEmpty {
                will = nil
                openSession(into: &out)
            } else {
                guard (try? Topic.validateName(topic)) != nil, flags.qos >= 0 else {
                    out.append(.send(.connack(.notSupported)))
                    out.append(.forget("invalid will topic"))
                    phase = .gone
                    break
                }
                will = SNWill(topic: topic, payload: [], qos: QoS(rawValue: UInt8(flags.qos)) ?? .atMostOnce, retain: flags.retain)
                phase = .awaitingWillMessage
                out.append(.send(.willMessageRequest))
            }
        case .willMessage(let payload):
            guard phase == .awaitingWillMessage else { break }
            will?.payload = payload
            openSession(into: &out)
        case .pingreq(let id):
            if phase == .asleep, id == nil || id == clientId {
                phase = .awake
                pump(now: now, into: &out)
                finishAwake(into: &out)
            } else if isConnected {
                out.append(.send(.pingresp))
            } else {
                out.append(.send(.disconnect(duration: nil)))
            }
        case .disconnect(let duration):
            if let d = duration, d > 0, isConnected {
                phase = .asleep
                sleepUntil = now + UInt64(d) * 1_500_000_000
                out.append(.send(.disconnect(duration: nil)))
            } else {
                out.append(.send(.disconnect(duration: nil)))
                if hasSession { out.append(.toBroker(.disconnect(DisconnectPacket()))) }
                end("DISCONNECT", into: &out)
            }
        default:
            guard isConnected else {
                // Not connected: tell the client so (it reconnects).
                out.append(.send(.disconnect(duration: nil)))
                break
            }
            connected(message, now: now, into: &out)
        }
        return out
    }

    private var isConnected: Bool { phase == .active || phase == .awake || phase == .asleep || phase == .connecting }

    private mutating func connect(flags: SNFlags, duration: UInt16, clientId id: String, now: UInt64, into out: inout [Action]) {
        guard !id.isEmpty, id.utf8.count <= 64 else {
            out.append(.send(.connack(.notSupported)))
            return
        }
        keepAliveNs = UInt64(duration) * 1_000_000_000
        if hasSession, id == clientId, !flags.cleanSession, !flags.will, phase != .connecting {
            // A sleeping or active client connecting again keeps its session (6.14).
            phase = .active
            out.append(.send(.connack(.accepted)))
            pump(now: now, into: &out)
            return
        }
        pendingConnect = (flags, duration, id)
        will = nil
        willChanged = false
        if flags.will {
            phase = .awaitingWillTopic
            willExchangeStarted = now
            out.append(.send(.willTopicRequest))
        } else {
            openSession(into: &out)
        }
    }

    private mutating func openSession(into out: inout [Action]) {
        guard let c = pendingConnect else { return }
        pendingConnect = nil
        if hasSession {
            out.append(.toBroker(.disconnect(DisconnectPacket())))
            out.append(.closeSession("reconnected"))
        }
        clientId = c.clientId
        broker = BrokerClient()
        waiters = [:]
        receivedQoS2 = []
        queue = []
        inflight = nil
        registry = SNTopicRegistry(capacity: config.maxTopics)
        hasSession = true
        phase = .connecting
        let mqttWill = will.map { MQTTCodec.Will(topic: $0.topic, payload: ByteBuffer(bytes: $0.payload), qos: $0.qos, retain: $0.retain) }
        out.append(.openSession(BrokerClient.connect(
            clientId: c.clientId, username: config.username, password: config.password.map { Array($0.utf8) },
            keepAlive: 0, cleanStart: c.flags.cleanSession, sessionExpiry: c.flags.cleanSession ? 0 : config.sessionExpiry,
            will: mqttWill, receiveMaximum: config.receiveMaximum)))
    }

    private mutating func connected(_ message: SNMessage, now: UInt64, into out: inout [Action]) {
        switch message {
        case .register(_, let msgId, let name):
            guard (try? Topic.validateName(name)) != nil else {
                out.append(.send(.regack(topicId: 0, msgId: msgId, .notSupported)))
                return
            }
            guard let id = registry.register(name) else {
                out.append(.send(.regack(topicId: 0, msgId: msgId, .congestion)))
                return
            }
            out.append(.send(.regack(topicId: id, msgId: msgId, .accepted)))
        case .regack(_, let msgId, let rc):
            guard var i = inflight, i.stage == .registering, i.msgId == msgId else { return }
            if rc != .accepted {
                inflight = nil
                ackBroker(i, into: &out)
                dropped += 1
                pump(now: now, into: &out)
                return
            }
            i.msgId = newMsgId()
            i.stage = i.message.qos == .atMostOnce ? .awaitingAck : (i.message.qos == .atLeastOnce ? .awaitingAck : .awaitingRec)
            i.sentAt = now
            i.retries = 0
            out.append(.send(publishMessage(i, dup: false)))
            if i.message.qos == .atMostOnce {
                inflight = nil
                pump(now: now, into: &out)
            } else {
                inflight = i
            }
        case .publish(let flags, let topicId, let msgId, let data):
            guard let name = resolve(flags.topicIdType, topicId) else {
                out.append(.send(.puback(topicId: topicId, msgId: msgId, .invalidTopicId)))
                return
            }
            switch flags.qos {
            case 0, -1:
                if let p = broker.publish(topic: name, payload: data, qos: .atMostOnce, retain: flags.retain) {
                    out.append(.toBroker(p))
                }
            case 1:
                let token = newToken(.puback(topicId: topicId, msgId: msgId))
                if let p = broker.publish(topic: name, payload: data, qos: .atLeastOnce, retain: flags.retain, token: token) {
                    out.append(.toBroker(p))
                }
            default:
                if !receivedQoS2.contains(msgId) {
                    guard receivedQoS2.count < Int(config.receiveMaximum) * 4 else {
                        out.append(.send(.puback(topicId: topicId, msgId: msgId, .congestion)))
                        return
                    }
                    receivedQoS2.insert(msgId)
                    if let p = broker.publish(topic: name, payload: data, qos: .exactlyOnce, retain: flags.retain) {
                        out.append(.toBroker(p))
                    }
                }
                out.append(.send(.pubrec(msgId: msgId)))
            }
        case .pubrel(let msgId):
            receivedQoS2.remove(msgId)
            out.append(.send(.pubcomp(msgId: msgId)))
        case .puback(_, let msgId, _):
            guard let i = inflight, i.msgId == msgId, i.stage == .awaitingAck else { return }
            inflight = nil
            ackBroker(i, into: &out)
            pump(now: now, into: &out)
            if phase == .awake { finishAwake(into: &out) }
        case .pubrec(let msgId):
            guard var i = inflight, i.msgId == msgId, i.stage == .awaitingRec || i.stage == .awaitingComp else { return }
            if !i.acknowledged {
                ackBroker(i, into: &out)
                i.acknowledged = true
            }
            i.stage = .awaitingComp
            i.sentAt = now
            i.retries = 0
            inflight = i
            out.append(.send(.pubrel(msgId: msgId)))
        case .pubcomp(let msgId):
            guard let i = inflight, i.msgId == msgId, i.stage == .awaitingComp else { return }
            inflight = nil
            pump(now: now, into: &out)
            if phase == .awake { finishAwake(into: &out) }
        case .subscribe(let flags, let msgId, let topic):
            guard flags.qos >= 0, let qos = QoS(rawValue: UInt8(flags.qos)) else {
                out.append(.send(.suback(flags: flags, topicId: 0, msgId: msgId, .notSupported)))
                return
            }
            guard let (filter, topicId) = subscriptionTopic(flags.topicIdType, topic) else {
                out.append(.send(.suback(flags: flags, topicId: 0, msgId: msgId, .invalidTopicId)))
                return
            }
            let token = newToken(.suback(flags: flags, topicId: topicId, msgId: msgId))
            out.append(.toBroker(broker.subscribe([TopicSubscription(filter: filter, qos: qos)], token: token)))
        case .unsubscribe(let flags, let msgId, let topic):
            guard let (filter, _) = subscriptionTopic(flags.topicIdType, topic) else {
                out.append(.send(.unsuback(msgId: msgId)))
                return
            }
            let token = newToken(.unsuback(msgId: msgId))
            out.append(.toBroker(broker.unsubscribe([filter], token: token)))
        case .willTopicUpdate(let flags, let topic):
            if topic.isEmpty {
                will = nil
            } else if (try? Topic.validateName(topic)) != nil, flags.qos >= 0 {
                will = SNWill(topic: topic, payload: will?.payload ?? [], qos: QoS(rawValue: UInt8(flags.qos)) ?? .atMostOnce,
                            retain: flags.retain)
            } else {
                out.append(.send(.willTopicResponse(.notSupported)))
                return
            }
            willChanged = true
            out.append(.send(.willTopicResponse(.accepted)))
        case .willMessageUpdate(let payload):
            guard will != nil else {
                out.append(.send(.willMessageResponse(.notSupported)))
                return
            }
            will?.payload = payload
            willChanged = true
            out.append(.send(.willMessageResponse(.accepted)))
        default:
            // Messages only a gateway sends, or a will message outside the exchange: dropped.
            break
        }
    }

    // MARK: The broker

    public mutating func brokerPackets(_ packets: [Packet], now: UInt64) -> [Action] {
        var out: [Action] = []
        for packet in packets {
            guard phase != .gone else { break }
            let (events, replies) = broker.receive(packet)
            out += replies.map { .toBroker($0) }
            for e in events { handle(e, now: now, into: &out) }
        }
        return out
    }

    public mutating func brokerClosed(_ reason: String, now: UInt64) -> [Action] {
        guard phase != .gone, hasSession else { return [] }
        hasSession = false
        var out: [Action] = []
        if phase == .connecting {
            out.append(.send(.connack(.congestion)))
        } else {
            out.append(.send(.disconnect(duration: nil)))
        }
        phase = .gone
        out.append(.forget("the broker ended the session: \(reason)"))
        return out
    }

    private mutating func handle(_ event: BrokerClient.Event, now: UInt64, into out: inout [Action]) {
        switch event {
        case .connected:
            guard phase == .connecting else { return }
            phase = .active
            out.append(.send(.connack(.accepted)))
        case .refused:
            out.append(.send(.connack(.notSupported)))
            hasSession = false
            phase = .gone
            out.append(.forget("CONNECT refused by the broker"))
        case .published(let token, let code):
            guard case .puback(let topicId, let msgId) = waiters.removeValue(forKey: token) else { return }
            out.append(.send(.puback(topicId: topicId, msgId: msgId, code.rawValue >= 0x80 ? .notSupported : .accepted)))
        case .subscribed(let token, let codes):
            guard case .suback(var flags, let topicId, let msgId) = waiters.removeValue(forKey: token) else { return }
            let code = codes.first ?? .unspecifiedError
            if code.rawValue >= 0x80 {
                out.append(.send(.suback(flags: flags, topicId: 0, msgId: msgId, .notSupported)))
            } else {
                flags.qos = Int8(code.rawValue)
                out.append(.send(.suback(flags: flags, topicId: topicId, msgId: msgId, .accepted)))
            }
        case .unsubscribed(let token):
            if case .unsuback(let msgId) = waiters.removeValue(forKey: token) {
                out.append(.send(.unsuback(msgId: msgId)))
            }
        case .pong:
            break
        case .message(let p):
            enqueue(p, now: now, into: &out)
        case .disconnected, .violation:
            out.append(.send(.disconnect(duration: nil)))
            out.append(.closeSession("disconnected by the broker"))
            hasSession = false
            phase = .gone
            out.append(.forget("disconnected by the broker"))
        }
    }

    private mutating func enqueue(_ p: PublishPacket, now: UInt64, into out: inout [Action]) {
        guard p.payload.readableBytes <= config.maxPayload else {
            dropped += 1
            if let a = broker.acknowledge(p) { out.append(.toBroker(a)) }
            return
        }
        if p.qos == .atMostOnce && queue.count >= config.maxQueued {
            dropped += 1
            return
        }
        queue.append(p)
        if phase == .active || phase == .awake { pump(now: now, into: &out) }
    }

    /// Sends queued messages while none is in flight (one QoS 1/2 message at a time).
    private mutating func pump(now: UInt64, into out: inout [Action]) {
        while inflight == nil, phase == .active || phase == .awake, let p = queue.popFirst() {
            var idType = SNTopicIdType.normal
            var topicId: UInt16
            if let pre = config.predefinedId(for: p.topic) {
                idType = .predefined
                topicId = pre
            } else if p.topic.utf8.count == 2 {
                idType = .short
                let b = Array(p.topic.utf8)
                topicId = UInt16(b[0]) << 8 | UInt16(b[1])
            } else if let id = registry.id(for: p.topic) {
                topicId = id
            } else {
                guard let id = registry.register(p.topic) else {
                    dropped += 1
                    if let a = broker.acknowledge(p) { out.append(.toBroker(a)) }
                    continue
                }
                topicId = id
                let msgId = newMsgId()
                inflight = Inflight(message: p, msgId: msgId, topicId: id, idType: .normal, stage: .registering,
                                    sentAt: now, retries: 0)
                out.append(.send(.register(topicId: id, msgId: msgId, topicName: p.topic)))
                return
            }
            let stage: Stage = p.qos == .exactlyOnce ? .awaitingRec : .awaitingAck
            let i = Inflight(message: p, msgId: p.qos == .atMostOnce ? 0 : newMsgId(), topicId: topicId, idType: idType,
                             stage: stage, sentAt: now, retries: 0)
            out.append(.send(publishMessage(i, dup: false)))
            if p.qos != .atMostOnce { inflight = i }
        }
    }

    private func publishMessage(_ i: Inflight, dup: Bool) -> SNMessage {
        .publish(flags: SNFlags(dup: dup, qos: Int8(i.message.qos.rawValue), retain: i.message.retain, topicIdType: i.idType),
                 topicId: i.topicId, msgId: i.msgId, data: i.message.payload)
    }

    /// An awake client gets PINGRESP once everything buffered is delivered, then sleeps again.
    private mutating func finishAwake(into out: inout [Action]) {
        guard phase == .awake, inflight == nil, queue.isEmpty else { return }
        out.append(.send(.pingresp))
        phase = .asleep
    }

    private mutating func ackBroker(_ i: Inflight, into out: inout [Action]) {
        if let a = broker.acknowledge(i.message) { out.append(.toBroker(a)) }
    }

    // MARK: Time

    public mutating func tick(now: UInt64) -> [Action] {
        var out: [Action] = []
        switch phase {
        case .awaitingWillTopic, .awaitingWillMessage:
            if now >= willExchangeStarted + retryNs * UInt64(config.maxRetries + 1) {
                phase = .gone
                out.append(.forget("will exchange not completed"))
            }
        case .asleep:
            if now >= sleepUntil { lose("sleep duration exceeded", into: &out) }
        case .active, .awake, .connecting:
            if keepAliveNs > 0 && now >= lastHeard + keepAliveNs * 3 / 2 {
                lose("keep alive timeout", into: &out)
            } else if var i = inflight, now >= i.sentAt + retryNs {
                if i.retries >= config.maxRetries {
                    lose("no acknowledgement after \(config.maxRetries) retransmissions", into: &out)
                } else {
                    i.retries += 1
                    i.sentAt = now
                    inflight = i
                    switch i.stage {
                    case .registering: out.append(.send(.register(topicId: i.topicId, msgId: i.msgId, topicName: i.message.topic)))
                    case .awaitingComp: out.append(.send(.pubrel(msgId: i.msgId)))
                    case .awaitingAck, .awaitingRec: out.append(.send(publishMessage(i, dup: true)))
                    }
                }
            }
        case .idle, .gone:
            break
        }
        return out
    }

    /// The client went silent: the will goes out (the broker's, or the updated one).
    private mutating func lose(_ reason: String, into out: inout [Action]) {
        if hasSession {
            if willChanged {
                // The broker holds the will of the CONNECT; an updated one is published here
                // from the client's session, then the session ends normally.
                if let w = will, let p = broker.publish(topic: w.topic, payload: ByteBuffer(bytes: w.payload), qos: .atMostOnce,
                                                        retain: w.retain) {
                    out.append(.toBroker(p))
                }
                out.append(.toBroker(.disconnect(DisconnectPacket())))
            }
            out.append(.closeSession(reason))
            hasSession = false
        }
        phase = .gone
        out.append(.forget(reason))
    }

    private mutating func end(_ reason: String, into out: inout [Action]) {
        if hasSession { out.append(.closeSession(reason)) }
        hasSession = false
        phase = .gone
        out.append(.forget(reason))
    }

    // MARK: Helpers

    private func resolve(_ type: SNTopicIdType, _ id: UInt16) -> String? {
        switch type {
        case .normal: return registry.name(for: id)
        case .predefined: return config.predefined[id]
        case .short:
            let bytes = [UInt8(id >> 8), UInt8(id & 0xFF)]
            guard let s = String(validating: bytes, as: UTF8.self), !Topic.hasWildcard(s) else { return nil }
            return s
        }
    }

    /// The MQTT filter and the topic id SUBACK returns (0 for wildcards and short names).
    private mutating func subscriptionTopic(_ type: SNTopicIdType, _ topic: SNTopic) -> (String, UInt16)? {
        switch (type, topic) {
        case (.predefined, .id(let id)):
            guard let name = config.predefined[id] else { return nil }
            return (name, id)
        case (.short, .name(let n)):
            return Topic.isValidFilter(n) ? (n, 0) : nil
        case (.normal, .name(let n)):
            guard Topic.isValidFilter(n) else { return nil }
            if Topic.hasWildcard(n) { return (n, 0) }
            guard let id = registry.register(n) else { return nil }
            return (n, id)
        default:
            return nil
        }
    }

    private mutating func newToken(_ w: Waiter) -> BrokerClient.Token {
        let t = nextToken
        nextToken += 1
        waiters[t] = w
        return t
    }

    private mutating func newMsgId() -> UInt16 {
        nextMsgId &+= 1
        if nextMsgId == 0 { nextMsgId = 1 }
        return nextMsgId
    }
}

/// Publishes the QoS -1 messages of clients that never connected (MQTT-SN 6.8) through one
/// shared session: only predefined ids and short names can be named that way.
public enum SNQoS3 {
    public static func topic(_ flags: SNFlags, _ topicId: UInt16, predefined: [UInt16: String]) -> String? {
        switch flags.topicIdType {
        case .predefined: return predefined[topicId]
        case .short:
            let bytes = [UInt8(topicId >> 8), UInt8(topicId & 0xFF)]
            guard let s = String(validating: bytes, as: UTF8.self), !Topic.hasWildcard(s) else { return nil }
            return s
        case .normal: return nil
        }
    }
}
