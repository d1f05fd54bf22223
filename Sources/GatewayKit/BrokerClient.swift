import DequeModule
import MQTTCodec
import NIOCore

/// The MQTT client side of one gateway session, as a state machine: the gateway's protocol
/// layer (a STOMP or MQTT-SN channel) asks it for the MQTT packets to send to the broker and
/// hands it the broker's packets, and gets back what they mean for its client. It owns the
/// packet identifiers, the QoS 1/2 handshakes in both directions, and the broker's receive
/// maximum: publishes beyond it wait here (`backlog`), which is how the gateway knows to stop
/// reading its client. MQTT 5.0, so that refusals carry reason codes. No I/O, no clock.
public struct BrokerClient: Sendable {
    /// A caller's handle on a request, returned in the event that completes it.
    public typealias Token = UInt64

    public enum Event: Sendable, Equatable {
        /// CONNACK: success, or the refusal's reason code and reason string.
        case connected(sessionPresent: Bool)
        case refused(ReasonCode, String?)
        /// PUBACK / PUBCOMP (or a failing PUBREC) of a publish that asked for a token.
        case published(Token, ReasonCode)
        case subscribed(Token, [ReasonCode])
        case unsubscribed(Token)
        case pong
        /// A message for the client. Call `acknowledge(_:)` once the client has it (QoS 1/2).
        case message(PublishPacket)
        /// The broker's DISCONNECT (5.0 reason code).
        case disconnected(ReasonCode, String?)
        /// A packet no broker may send to a client, or one for an unknown id: the session is
        /// unusable.
        case violation(String)
    }

    private enum Stage: Sendable { case awaitingAck, awaitingRec, awaitingComp }

    private struct Outgoing: Sendable {
        var packet: PublishPacket
        var token: Token?
        var stage: Stage
    }

    /// Largest number of QoS 1/2 publishes the broker lets us have unacknowledged (its CONNACK
    /// Receive Maximum, 65,535 when absent).
    public private(set) var serverReceiveMaximum = 65_535
    /// Largest QoS the broker accepts on PUBLISH (CONNACK Maximum QoS).
    public private(set) var serverMaximumQoS: QoS = .exactlyOnce
    public private(set) var isConnected = false

    private var nextId: UInt16 = 0
    private var inflight: [UInt16: Outgoing] = [:]
    private var waiting: Deque<(PublishPacket, Token?)> = []
    private var subscribing: [UInt16: Token] = [:]
    private var unsubscribing: [UInt16: Token] = [:]
    /// QoS 2 messages received and released to the caller, awaiting PUBREL.
    private var receivedQoS2: Set<UInt16> = []

    public init() {}

    /// Publishes waiting for room in the broker's receive maximum.
    public var backlog: Int { waiting.count }
    /// Publishes sent and not yet completed.
    public var inflightCount: Int { inflight.count }

    // MARK: Requests

    public static func connect(clientId: String, username: String?, password: [UInt8]?, keepAlive: UInt16,
                               cleanStart: Bool = true, sessionExpiry: UInt32 = 0, will: Will? = nil,
                               receiveMaximum: UInt16) -> Packet {
        var props = Properties()
        props.items.append(.receiveMaximum(receiveMaximum))
        if sessionExpiry > 0 { props.items.append(.sessionExpiryInterval(sessionExpiry)) }
        return .connect(ConnectPacket(protocolVersion: .v5, cleanStart: cleanStart, keepAlive: keepAlive,
                                      properties: props, clientId: clientId, will: will, username: username,
                                      password: password.map { ByteBuffer(bytes: $0) }))
    }

    /// The packet to send now, or nil when the publish waits for room (QoS 1/2 only).
    public mutating func publish(topic: String, payload: ByteBuffer, qos: QoS, retain: Bool = false,
                                 properties: Properties = Properties(), token: Token? = nil) -> Packet? {
        let packet = PublishPacket(qos: min(qos, serverMaximumQoS), retain: retain, topic: topic, properties: properties,
                                   payload: payload)
        if packet.qos == .atMostOnce { return .publish(packet) }
        if inflight.count >= serverReceiveMaximum || !isConnected {
            waiting.append((packet, token))
            return nil
        }
        return start(packet, token: token)
    }

    public mutating func subscribe(_ subscriptions: [TopicSubscription], identifier: Int? = nil, token: Token) -> Packet {
        let id = allocateId()
        subscribing[id] = token
        var props = Properties()
        if let identifier { props.items.append(.subscriptionIdentifier(identifier)) }
        return .subscribe(SubscribePacket(packetId: id, properties: props, subscriptions: subscriptions))
    }

    public mutating func unsubscribe(_ filters: [String], token: Token) -> Packet {
        let id = allocateId()
        unsubscribing[id] = token
        return .unsubscribe(UnsubscribePacket(packetId: id, filters: filters))
    }

    /// The acknowledgement of a message delivered by `.message` (nil for QoS 0).
    public mutating func acknowledge(_ message: PublishPacket) -> Packet? {
        guard let id = message.packetId else { return nil }
        switch message.qos {
        case .atMostOnce: return nil
        case .atLeastOnce: return .puback(PubAckPacket(packetId: id))
        case .exactlyOnce: return .pubrec(PubAckPacket(packetId: id))
        }
    }

    // MARK: The broker's packets

    /// Events for the caller and packets to send back to the broker (acknowledgements and
    /// publishes that were waiting for room).
    public mutating func receive(_ packet: Packet) -> (events: [Event], replies: [Packet]) {
        var events: [Event] = []
        var replies: [Packet] = []
        switch packet {
        case .connack(let c):
            guard !isConnected else { return ([.violation("a second CONNACK")], []) }
            if c.reasonCode.rawValue >= 0x80 {
                return ([.refused(c.reasonCode, c.properties.reasonString)], [])
            }
            isConnected = true
            for item in c.properties.items {
                if case .receiveMaximum(let r) = item { serverReceiveMaximum = max(1, Int(r)) }
                if case .maximumQoS(let q) = item { serverMaximumQoS = QoS(rawValue: q) ?? .exactlyOnce }
            }
            events.append(.connected(sessionPresent: c.sessionPresent))
            replies += drainWaiting()
        case .publish(let p):
            if p.qos == .exactlyOnce, let id = p.packetId, receivedQoS2.contains(id) {
                // A retransmission of a message we already have: acknowledge, do not deliver twice.
                replies.append(.pubrec(PubAckPacket(packetId: id)))
            } else {
                if p.qos == .exactlyOnce, let id = p.packetId { receivedQoS2.insert(id) }
                events.append(.message(p))
            }
        case .pubrel(let a):
            receivedQoS2.remove(a.packetId)
            replies.append(.pubcomp(PubAckPacket(packetId: a.packetId)))
        case .puback(let a):
            guard let o = inflight[a.packetId], o.stage == .awaitingAck else {
                return ([.violation("PUBACK for unknown packet id \(a.packetId)")], [])
            }
            inflight[a.packetId] = nil
            if let t = o.token { events.append(.published(t, a.reasonCode)) }
            replies += drainWaiting()
        case .pubrec(let a):
            guard var o = inflight[a.packetId], o.stage == .awaitingRec else {
                return ([.violation("PUBREC for unknown packet id \(a.packetId)")], [])
            }
            if a.reasonCode.rawValue >= 0x80 {
                inflight[a.packetId] = nil
                if let t = o.token { events.append(.published(t, a.reasonCode)) }
                replies += drainWaiting()
            } else {
                o.stage = .awaitingComp
                inflight[a.packetId] = o
                replies.append(.pubrel(PubAckPacket(packetId: a.packetId)))
            }
        case .pubcomp(let a):
            guard let o = inflight[a.packetId], o.stage == .awaitingComp else {
                return ([.violation("PUBCOMP for unknown packet id \(a.packetId)")], [])
            }
            inflight[a.packetId] = nil
            if let t = o.token { events.append(.published(t, a.reasonCode)) }
            replies += drainWaiting()
        case .suback(let s):
            guard let t = subscribing.removeValue(forKey: s.packetId) else {
                return ([.violation("SUBACK for unknown packet id \(s.packetId)")], [])
            }
            events.append(.subscribed(t, s.reasonCodes))
        case .unsuback(let u):
            guard let t = unsubscribing.removeValue(forKey: u.packetId) else {
                return ([.violation("UNSUBACK for unknown packet id \(u.packetId)")], [])
            }
            events.append(.unsubscribed(t))
        case .pingresp:
            events.append(.pong)
        case .disconnect(let d):
            events.append(.disconnected(d.reasonCode, d.properties.reasonString))
        case .connect, .subscribe, .unsubscribe, .pingreq, .auth:
            events.append(.violation("the broker sent \(packet.type)"))
        }
        return (events, replies)
    }

    // MARK: Internals

    private mutating func start(_ packet: PublishPacket, token: Token?) -> Packet {
        var p = packet
        p.packetId = allocateId()
        inflight[p.packetId!] = Outgoing(packet: p, token: token, stage: p.qos == .atLeastOnce ? .awaitingAck : .awaitingRec)
        return .publish(p)
    }

    private mutating func drainWaiting() -> [Packet] {
        var out: [Packet] = []
        while isConnected, inflight.count < serverReceiveMaximum, let (p, t) = waiting.popFirst() {
            out.append(start(p, token: t))
        }
        return out
    }

    private mutating func allocateId() -> UInt16 {
        repeat {
            nextId &+= 1
            if nextId == 0 { nextId = 1 }
        } while inflight[nextId] != nil || subscribing[nextId] != nil || unsubscribing[nextId] != nil
        return nextId
    }
}
