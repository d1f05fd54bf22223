import SwiftletConfig
import Foundation
import MQTTCodec
import SwiftletRouting
import NIOCore

/// The MQTT protocol of one connection as a value: it takes decoded packets, decoding
/// failures, clock ticks and the answers of the world around it (authentication, session
/// attach), and returns what to do. It performs no I/O and reads no clock: time comes in as
/// monotonic nanoseconds. `MQTTConnectionHandler` executes its actions on the channel; every
/// MQTT rule decided here is therefore testable without a socket (ConnectionStateMachineTests).
///
/// What stays outside: the session (shared with other loops through the router), the auth
/// chain, the store and hooks. Where a rule needs session state (QoS 2 packet ids awaiting
/// PUBREL, the in-flight window) the handler passes it in.
///
/// Every error maps to its wire consequence in one place, `violation(_:_:)`: a 5.0 client gets
/// DISCONNECT with the reason code (then the socket drains and closes), a 3.x client a close.
/// Packet-scope failures (a reason code in PUBACK/PUBREC) are `.acknowledge`.
public struct ConnectionStateMachine {
    public enum Phase: Equatable, Sendable { case awaitingConnect, connecting, connected, closed }

    /// What the handler does next.
    public enum Action: Equatable {
        case none
        /// Write this packet.
        case send(Packet)
        /// Close without a word: a 3.x protocol error, or nothing can be answered.
        case close
        /// 5.0: write this DISCONNECT, then half-close, drain and close. `why` is for the log.
        case disconnect(DisconnectPacket, why: String)
        /// Write this CONNACK (a failure code), then close. `why` is for the log.
        case refuse(ConnAckPacket, why: String)
        /// Keep the packet until the connection can process it (before CONNACK).
        case hold
        /// A valid CONNECT: ask the auth chain with `password`; the request is in
        /// `connectRequest`, the will (checked) here. The password is not kept.
        case authenticate(password: ByteBuffer?, will: Will?)
        /// A valid PUBLISH on `topic` (the alias resolved): authorize and route it.
        case publish(PublishPacket, topic: String)
        /// A PUBLISH that is not routed: acknowledge it with `reason` (QoS 1/2; 3.x always
        /// success) and count it as dropped.
        case acknowledge(PublishPacket, ReasonCode)
        /// A resent QoS 2 PUBLISH whose packet id awaits PUBREL: PUBREC again, do not route.
        case duplicate(PublishPacket)
        /// PUBACK, PUBREC or PUBCOMP from the client that fits its flow (or names no message).
        case acknowledged(AckKind, PubAckPacket)
        /// PUBREL from the client.
        case release(PubAckPacket)
        case subscribe(SubscribePacket)
        case unsubscribe(UnsubscribePacket)
        /// DISCONNECT from the client: close; `withWill` for reason 0x04.
        case clientDisconnect(withWill: Bool)
        /// The 3.1.1 retry of unacknowledged messages is due: resend those sent before `cutoff`.
        case retry(cutoff: UInt64)
    }

    /// What a valid CONNECT asks for, read by the handler for authentication and the session.
    /// The fields are ordered so that they pack (43 B).
    public struct ConnectRequest: Equatable {
        public var clientId: String
        public var username: String?
        /// Seconds the session outlives the connection (0: ends with it, .max: never).
        public var sessionExpiry: UInt32
        /// What a 5.0 client asked for, to tell it when it was capped.
        public var requestedExpiry: UInt32?
        /// The broker chose the client id (5.0 gets it in CONNACK).
        public var assigned: Bool
        public var cleanStart: Bool
    }

    // Every connection holds one of these, parked or not, so the stored fields are ordered to
    // pack without padding (112 B; `HandlerLayoutTests` checks it): each
    // smaller field fills the bytes an odd-sized one before it leaves, and the figures the
    // protocol bounds to 16 or 32 bits are stored in that width.

    /// Shared by every connection of a broker (one reference, not a copy per connection).
    public let policy: ConnectionPolicy
    public private(set) var connectRequest: ConnectRequest?
    public private(set) var phase = Phase.awaitingConnect
    /// Session expiry after a DISCONNECT may have changed it (5.0).
    public private(set) var sessionExpiry: UInt32 = 0

    // Time, in monotonic nanoseconds.
    public private(set) var lastActivity: UInt64
    private var keepAliveLimit: UInt64 = 0
    private var nextRetry: UInt64?

    public private(set) var version = ProtocolVersion.v3_1_1
    // What the client told us about itself (5.0).
    public private(set) var requestProblemInfo = true
    public private(set) var wantsResponseInformation = false
    /// Maximum Packet Size; 0: none given (0 is not a valid value on the wire).
    private var maxPacketSize32: UInt32 = 0
    private var keepAlive16: UInt16 = 0
    private var receiveMaximum16: UInt16 = 65_535
    private var topicAliasMax16: UInt16 = 0
    private var nextOutboundAlias: UInt16 = 1

    // Topic aliases.
    private var inboundAliases: [UInt16: String] = [:]
    /// By the topic's bytes: an alias never stands for a canonically equal but different topic.
    private var outboundAliases: [UTF8Key: UInt16] = [:]

    public var config: MQTTConfig { policy.mqtt }
    /// Negotiated keep alive in seconds (the client's, or server_keep_alive for 5.0).
    public var keepAlive: Int { Int(keepAlive16) }
    public var clientReceiveMaximum: Int { Int(receiveMaximum16) }
    public var clientMaxPacketSize: Int { maxPacketSize32 == 0 ? .max : Int(maxPacketSize32) }
    public var clientTopicAliasMax: Int { Int(topicAliasMax16) }

    public init(policy: ConnectionPolicy, now: UInt64) {
        self.policy = policy
        self.lastActivity = now
    }

    public var clientId: String { connectRequest?.clientId ?? "" }

    // MARK: Inbound

    /// Bytes arrived and decoded into at least one packet: keep alive restarts.
    public mutating func activity(now: UInt64) { lastActivity = now }

    /// One decoded packet. `session`: what the rules need of the attached session (ignored
    /// before CONNACK).
    public mutating func received<S: SessionView>(_ packet: Packet, now: UInt64, session: S) -> Action {
        switch phase {
        case .awaitingConnect:
            guard case .connect(let c) = packet else { return .close }
            return connectReceived(c, now: now)
        case .connecting:
            return .hold
        case .connected:
            return connectedReceived(packet, session: session)
        case .closed:
            return .none
        }
    }

    private mutating func connectReceived(_ c: ConnectPacket, now: UInt64) -> Action {
        version = c.protocolVersion
        let m = config
        var clientId = c.clientId
        var assigned = false
        if clientId.isEmpty {
            if version == .v3_1 || (version == .v3_1_1 && !c.cleanStart) {
                return refuse(.clientIdentifierNotValid, "empty client id")
            }
            clientId = "swiftlet-" + UUID().uuidString.lowercased()
            assigned = true
        }
        if clientId.utf8.count > m.maxClientIdLength { return refuse(.clientIdentifierNotValid, "client id longer than max_clientid_len") }
        let p = c.properties
        if version == .v5 {
            if p.authenticationMethod != nil { return refuse(.badAuthenticationMethod, "enhanced authentication is not supported") }
            if let rm = p.receiveMaximum { receiveMaximum16 = rm }
            if let mps = p.maximumPacketSize { maxPacketSize32 = mps }
            if let tam = p.topicAliasMaximum { topicAliasMax16 = tam }
            if let rpi = p.requestProblemInformation { requestProblemInfo = rpi == 1 }
            wantsResponseInformation = p.requestResponseInformation == 1
        }
        if let w = c.will {
            if let reason = topicNameProblem(w.topic) { return refuse(reason, "invalid will topic") }
            if Int(w.qos.rawValue) > m.maxQoS { return refuse(.qosNotSupported, "will QoS above max_qos") }
            if w.retain && !m.retainAvailable { return refuse(.retainNotSupported, "retain is not available") }
            if w.topic.hasPrefix("$SYS/") { return refuse(.notAuthorized, "will on a $SYS topic") }
        }
        let expiry: UInt32
        if version == .v5 {
            expiry = min(p.sessionExpiryInterval ?? 0, m.maxSessionExpiryInterval)
        } else {
            expiry = c.cleanStart ? 0 : (m.sessionExpiryInterval == 0 ? .max : m.sessionExpiryInterval)
        }
        sessionExpiry = expiry
        connectRequest = ConnectRequest(clientId: clientId, username: c.username, sessionExpiry: expiry,
                                        requestedExpiry: version == .v5 ? p.sessionExpiryInterval : nil,
                                        assigned: assigned, cleanStart: c.cleanStart)
        keepAlive16 = c.keepAlive
        if version == .v5 && m.serverKeepAlive > 0 { keepAlive16 = UInt16(clamping: m.serverKeepAlive) }
        phase = .connecting
        armKeepAlive()
        lastActivity = now
        return .authenticate(password: c.password, will: c.will)
    }

    /// The client's identity as its TLS certificate gives it (`peer_cert_as_clientid`,
    /// `peer_cert_as_username`), before authentication. A replaced client id counts as assigned,
    /// so a 5.0 client learns it from CONNACK.
    public mutating func useIdentity(clientId: String?, username: String?) {
        guard phase == .connecting, var r = connectRequest else { return }
        if let clientId, !clientId.isEmpty, clientId != r.clientId {
            r.clientId = clientId
            r.assigned = true
        }
        if let username { r.username = username }
        connectRequest = r
    }

    /// The auth chain answered the CONNECT (`why`: its reason when it refused).
    public func authenticated(_ allowed: Bool, why: String = "authentication failed") -> Action {
        guard phase == .connecting else { return .none }
        guard allowed else { return refuse(connectRequest?.username == nil ? .notAuthorized : .badUserNameOrPassword, why) }
        return .none
    }

    /// The client id, user name or address is banned (`banned add`): CONNACK 0x8A for 5.0,
    /// "not authorized" (5) for 3.x, which has no such code.
    public func banned() -> Action {
        guard phase == .connecting else { return .none }
        return refuse(.banned, "banned")
    }

    /// The session is attached: the CONNACK to send. Keep alive and the retry timer start now.
    public mutating func attached(sessionPresent: Bool, now: UInt64) -> Packet {
        phase = .connected
        var props = Properties()
        if version == .v5, let r = connectRequest {
            let m = config
            if r.assigned { props.items.append(.assignedClientIdentifier(r.clientId)) }
            if let asked = r.requestedExpiry, asked != r.sessionExpiry { props.items.append(.sessionExpiryInterval(r.sessionExpiry)) }
            if m.receiveMaximum != 65_535 { props.items.append(.receiveMaximum(UInt16(m.receiveMaximum))) }
            if m.maxQoS < 2 { props.items.append(.maximumQoS(UInt8(m.maxQoS))) }
            if !m.retainAvailable { props.items.append(.retainAvailable(0)) }
            props.items.append(.maximumPacketSize(UInt32(m.maxPacketSize)))
            props.items.append(.topicAliasMaximum(UInt16(m.maxTopicAlias)))
            if !m.wildcardSubscription { props.items.append(.wildcardSubscriptionAvailable(0)) }
            if !m.sharedSubscription { props.items.append(.sharedSubscriptionAvailable(0)) }
            if m.serverKeepAlive > 0 { props.items.append(.serverKeepAlive(UInt16(m.serverKeepAlive))) }
            if wantsResponseInformation { props.items.append(.responseInformation("swiftlet/response/\(r.clientId)")) }
        }
        armKeepAlive()
        if version != .v5, config.retryInterval > 0 { nextRetry = now + Self.nanos(config.retryInterval) }
        return .connack(ConnAckPacket(sessionPresent: sessionPresent, reasonCode: .success, properties: props))
    }

    private mutating func connectedReceived<S: SessionView>(_ packet: Packet, session: S) -> Action {
        switch packet {
        case .publish(let p): return publishReceived(p, session: session)
        case .puback(let a): return acknowledgement(.puback, a, fit: session.fit(.puback, a.packetId))
        case .pubrec(let a): return acknowledgement(.pubrec, a, fit: session.fit(.pubrec, a.packetId))
        case .pubcomp(let a): return acknowledgement(.pubcomp, a, fit: session.fit(.pubcomp, a.packetId))
        case .pubrel(let a): return .release(a)
        case .subscribe(let s): return .subscribe(s)
        case .unsubscribe(let u): return .unsubscribe(u)
        case .pingreq: return .send(.pingresp)
        case .disconnect(let d): return disconnectReceived(d)
        case .connect: return violation(.protocolError, "second CONNECT")
        case .auth: return violation(.protocolError, "AUTH without an authentication method")
        case .connack, .suback, .unsuback, .pingresp:
            return violation(.protocolError, "\(packet.type) is sent by servers only")
        }
    }

    /// A PUBLISH after CONNACK.
    private mutating func publishReceived<S: SessionView>(_ p: PublishPacket, session: S) -> Action {
        let m = config
        if Int(p.qos.rawValue) > m.maxQoS { return violation(.qosNotSupported, "QoS \(p.qos.rawValue) above max_qos") }
        if p.retain && !m.retainAvailable { return violation(.retainNotSupported, "retain is not available") }
        var topic = p.topic
        if version == .v5 {
            if !p.properties.subscriptionIdentifiers.isEmpty {
                return violation(.protocolError, "subscription identifier in a client PUBLISH")
            }
            if let alias = p.properties.topicAlias {
                guard alias != 0, Int(alias) <= m.maxTopicAlias else {
                    return violation(.topicAliasInvalid, "topic alias \(alias) outside 1...\(m.maxTopicAlias)")
                }
                if topic.isEmpty {
                    guard let t = inboundAliases[alias] else { return violation(.protocolError, "topic alias \(alias) was never set") }
                    topic = t
                } else {
                    inboundAliases[alias] = topic
                }
            }
        }
        if let bad = topicNameProblem(topic) {
            if p.qos == .atMostOnce || version != .v5 { return violation(bad, "topic exceeds max_topic_length or max_topic_levels") }
            return .acknowledge(p, bad)
        }
        if topic.hasPrefix("$SYS/") || topic == "$SYS" {
            // Only the broker publishes under $SYS.
            return .acknowledge(p, version != .v5 || p.qos == .atMostOnce ? .success : .notAuthorized)
        }
        if p.qos == .exactlyOnce, let id = p.packetId {
            if session.awaitingRelease(id) { return .duplicate(p) }
            let waiting = session.awaitingReleaseCount
            if version == .v5 && waiting >= m.receiveMaximum {
                return violation(.receiveMaximumExceeded, "more than receive_maximum QoS 2 messages awaiting PUBREL")
            }
            // 3.x has no Receive Maximum: beyond max_awaiting_rel new ones are acknowledged and dropped.
            if version != .v5 && waiting >= m.maxAwaitingRel { return .acknowledge(p, .success) }
        }
        return .publish(p, topic: topic)
    }

    /// PUBACK/PUBREC/PUBCOMP checked against the message it names (`fit` from the session).
    private func acknowledgement(_ ack: AckKind, _ a: PubAckPacket, fit: AckFit) -> Action {
        guard fit != .breaksFlow else {
            let name = ack == .puback ? "PUBACK" : ack == .pubrec ? "PUBREC" : "PUBCOMP"
            return violation(.protocolError, "\(name) for packet id \(a.packetId) breaks its QoS flow")
        }
        return .acknowledged(ack, a)
    }

    private mutating func disconnectReceived(_ d: DisconnectPacket) -> Action {
        if version == .v5, let e = d.properties.sessionExpiryInterval {
            if sessionExpiry == 0 && e != 0 {
                return violation(.protocolError, "session expiry set on DISCONNECT after 0 on CONNECT")
            }
            sessionExpiry = min(e, config.maxSessionExpiryInterval)
        }
        return .clientDisconnect(withWill: d.reasonCode == .disconnectWithWillMessage)
    }

    // MARK: Errors

    /// A rule was broken: the one place that decides the wire consequence. 5.0 after CONNECT:
    /// DISCONNECT with `reason` (and `why` as reason string when the client wants problem
    /// information); otherwise a plain close.
    public func violation(_ reason: ReasonCode, _ why: String) -> Action {
        guard version == .v5, phase == .connected || phase == .connecting else { return .close }
        var props = Properties()
        if requestProblemInfo { props.items.append(.reasonString(why)) }
        return .disconnect(DisconnectPacket(reasonCode: reason, properties: props), why: why)
    }

    /// The byte stream could not be decoded.
    public mutating func decodingFailed(_ error: Error) -> Action {
        switch error {
        case let e as ConnectDecodingError:
            // CONNACK with the reason code for 5.0; 3.x gets 0x01 for an unknown level, else a close.
            if e.version == .v5 {
                version = .v5
                return refuse(e.underlying.reasonCode, "\(e.underlying)")
            }
            if case .unsupportedProtocolVersion = e.underlying { return refuseV3(.unsupportedProtocolVersion, "\(e.underlying)") }
            return .close
        case let e as MQTTCodecError:
            if phase == .awaitingConnect {
                if case .unsupportedProtocolVersion = e { return refuseV3(.unsupportedProtocolVersion, "\(e)") }
                return .close
            }
            return violation(e.reasonCode, "\(e)")
        default:
            return .close
        }
    }

    private func refuse(_ reason: ReasonCode, _ why: String) -> Action {
        .refuse(ConnAckPacket(sessionPresent: false, reasonCode: reason), why: why)
    }

    /// A CONNACK in the 3.1.1 format, whatever was asked.
    private mutating func refuseV3(_ reason: ReasonCode, _ why: String) -> Action {
        version = .v3_1_1
        return refuse(reason, why)
    }

    /// Another connection took the client id over.
    public func takenOver() -> Action {
        guard version == .v5, phase == .connected else { return .close }
        return .disconnect(DisconnectPacket(reasonCode: .sessionTakenOver), why: "session taken over")
    }

    /// The broker shuts down.
    public func shuttingDown() -> Action {
        guard version == .v5, phase == .connected else { return .close }
        return .disconnect(DisconnectPacket(reasonCode: .serverShuttingDown), why: "server shutting down")
    }

    /// The connection is gone; later input is ignored.
    public mutating func closed() { phase = .closed }

    // MARK: Time

    /// Called about once a second: the CONNECT idle timeout, keep alive and the 3.1.1 retry.
    public mutating func tick(now: UInt64) -> Action {
        switch phase {
        case .awaitingConnect:
            return now >= lastActivity + Self.nanos(config.idleTimeout) ? .close : .none
        case .connecting, .connected:
            if keepAliveLimit > 0, now >= lastActivity + keepAliveLimit {
                return violation(.keepAliveTimeout, "keep alive timeout")
            }
            if phase == .connected, let due = nextRetry, now >= due {
                let interval = Self.nanos(config.retryInterval)
                nextRetry = due + interval
                return .retry(cutoff: now >= interval ? now - interval : 0)
            }
            return .none
        case .closed:
            return .none
        }
    }

    private mutating func armKeepAlive() {
        keepAliveLimit = UInt64(Double(keepAlive) * config.keepaliveBackoff * 1_000_000_000)
    }

    // MARK: Outbound

    /// The packet as it may be sent under the client's Maximum Packet Size (MQTT-3.1.2-24):
    /// Reason String and User Properties are left out first (MQTT-3.1.2-25); nil when it
    /// still does not fit. `close`: nothing can be said (a CONNACK or DISCONNECT that does
    /// not fit), so the connection closes.
    public func fitting(_ packet: Packet) -> (packet: Packet?, close: Bool) {
        guard clientMaxPacketSize != .max, packet.encodedLength(version: version) > clientMaxPacketSize else {
            return (packet, false)
        }
        let stripped = packet.withoutDiagnostics
        if stripped.encodedLength(version: version) <= clientMaxPacketSize { return (stripped, false) }
        switch packet {
        case .connack, .disconnect: return (nil, true)
        default: return (nil, false)
        }
    }

    /// The outbound topic alias for `topic` (5.0, up to the client's Topic Alias Maximum):
    /// `(alias, isNew)`; a known alias lets the topic be left out. nil when none is available.
    public mutating func outboundAlias(for topic: String) -> (alias: UInt16, isNew: Bool)? {
        guard version == .v5, clientTopicAliasMax > 0 else { return nil }
        let key = UTF8Key(topic)
        if let a = outboundAliases[key] { return (a, false) }
        // 0 once all 65,535 are given: a client whose maximum is 65,535 must not make the
        // counter overflow (a trap that would end the broker).
        guard nextOutboundAlias != 0, Int(nextOutboundAlias) <= clientTopicAliasMax else { return nil }
        let a = nextOutboundAlias
        outboundAliases[key] = a
        nextOutboundAlias &+= 1
        return (a, true)
    }

    // MARK: SUBSCRIBE

    /// What one filter of a SUBSCRIBE gets, once the ACL answered (`allowed`).
    public enum SubscriptionVerdict: Equatable {
        /// Subscribe with these options (the QoS capped by max_qos).
        case grant(ParsedFilter, SubscriptionOptions)
        /// Refused with this SUBACK code (3.x: 0x80); the other filters go on.
        case refuse(ReasonCode, why: String)
        /// A rule broken: the whole connection ends (`violation`).
        case violation(Action)
    }

    /// The rules for one filter of a SUBSCRIBE. `parsed` is `ParsedFilter.parse(sub.filter)`
    /// (nil when invalid), computed once by the caller for the ACL question too.
    /// `held` is how many filters the session has, `replaces` whether this one is among them
    /// (a repeated filter replaces the old one and does not count against `max_subscriptions`).
    public func subscription(_ sub: TopicSubscription, parsed: ParsedFilter?, allowed: Bool,
                             identifier: Int?, held: Int = 0, replaces: Bool = false) -> SubscriptionVerdict {
        let m = config
        let v5 = version == .v5
        guard let parsed, parsed.filter.utf8.count <= m.maxTopicLength, Topic.levelCount(parsed.filter) <= m.maxTopicLevels else {
            return .refuse(v5 ? .topicFilterInvalid : .unspecifiedError, why: "invalid topic filter")
        }
        guard allowed else { return .refuse(v5 ? .notAuthorized : .unspecifiedError, why: "not authorized") }
        if m.maxSubscriptions > 0 && !replaces && held >= m.maxSubscriptions {
            return .refuse(v5 ? .quotaExceeded : .unspecifiedError, why: "max_subscriptions (\(m.maxSubscriptions)) reached")
        }
        if parsed.group != nil && sub.noLocal && v5 {
            return .violation(violation(.protocolError, "No Local on a shared subscription"))
        }
        if !m.wildcardSubscription && Topic.hasWildcard(parsed.filter) {
            return .refuse(v5 ? .wildcardSubscriptionsNotSupported : .unspecifiedError, why: "wildcard subscriptions are off")
        }
        if !m.sharedSubscription && parsed.group != nil {
            return .refuse(v5 ? .sharedSubscriptionsNotSupported : .unspecifiedError, why: "shared subscriptions are off")
        }
        let granted = QoS(rawValue: min(sub.qos.rawValue, UInt8(m.maxQoS)))!
        return .grant(parsed, SubscriptionOptions(qos: granted, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished,
                                                  retainHandling: sub.retainHandling, subscriptionIdentifier: identifier))
    }

    // MARK: Rules

    /// Topic length and level limits; nil when acceptable.
    public func topicNameProblem(_ topic: String) -> ReasonCode? {
        if topic.utf8.count > config.maxTopicLength || Topic.levelCount(topic) > config.maxTopicLevels {
            return .topicNameInvalid
        }
        return nil
    }

    static func nanos(_ seconds: Double) -> UInt64 { UInt64(seconds * 1_000_000_000) }
}

/// The MQTT limits every connection of a broker applies, held once.
public final class ConnectionPolicy: Sendable {
    public let mqtt: MQTTConfig
    public init(_ mqtt: MQTTConfig) { self.mqtt = mqtt }
}

/// The acknowledgements of an outgoing QoS 1/2 PUBLISH.
public enum AckKind: Sendable { case puback, pubrec, pubcomp }

/// How an acknowledgement fits the flow of the message it names.
public enum AckFit: Equatable, Sendable {
    /// No message in flight has this packet id (late, or after a session resumed).
    case unknown
    case fits
    /// PUBREC or PUBCOMP for a QoS 1 message, PUBACK for a QoS 2 one, PUBCOMP before
    /// PUBREC: the client broke the QoS flow, a protocol error on the connection.
    case breaksFlow
}

/// What the connection's rules need to know of its session: the QoS 2 packet ids received
/// and not yet released, and how an acknowledgement fits the message in flight.
public protocol SessionView {
    func awaitingRelease(_ packetId: UInt16) -> Bool
    var awaitingReleaseCount: Int { get }
    func fit(_ ack: AckKind, _ packetId: UInt16) -> AckFit
}

/// Before CONNACK there is no session.
public struct NoSession: SessionView {
    public init() {}
    public func awaitingRelease(_ packetId: UInt16) -> Bool { false }
    public var awaitingReleaseCount: Int { 0 }
    public func fit(_ ack: AckKind, _ packetId: UInt16) -> AckFit { .unknown }
}

extension Packet {
    /// The packet without its Reason String and User Properties, which a sender may leave
    /// out to stay under the receiver's Maximum Packet Size (MQTT-3.1.2-25).
    var withoutDiagnostics: Packet {
        func strip(_ p: inout Properties) {
            p.items.removeAll {
                switch $0 {
                case .reasonString, .userProperty: return true
                default: return false
                }
            }
        }
        switch self {
        case .connack(var p): strip(&p.properties); return .connack(p)
        case .puback(var p): strip(&p.properties); return .puback(p)
        case .pubrec(var p): strip(&p.properties); return .pubrec(p)
        case .pubrel(var p): strip(&p.properties); return .pubrel(p)
        case .pubcomp(var p): strip(&p.properties); return .pubcomp(p)
        case .suback(var p): strip(&p.properties); return .suback(p)
        case .unsuback(var p): strip(&p.properties); return .unsuback(p)
        case .disconnect(var p): strip(&p.properties); return .disconnect(p)
        default: return self
        }
    }
}
