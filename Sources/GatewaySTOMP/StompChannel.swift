import DequeModule
import GatewayKit
import MQTTCodec
import NIOCore
import SwiftletRouting

/// What one STOMP connection needs to know of the gateway's configuration.
public struct StompChannelConfig: Sendable {
    /// A CONNECT without `login` is made as `defaultLogin`/`defaultPasscode` (emqttd_stomp's
    /// `allow_anonymous` and `default_user`); without it, such a CONNECT is refused.
    public var allowAnonymous = true
    public var defaultLogin = "guest"
    public var defaultPasscode = "guest"
    /// The shortest heart-beat interval the gateway sends or asks for, in milliseconds; what
    /// CONNECTED offers in both directions. 0 disables heart-beating.
    public var heartbeatMs = 1000
    /// QoS 1 messages the broker may have unacknowledged with this client (MQTT Receive Maximum):
    /// the STOMP client's prefetch for `ack:client` subscriptions.
    public var receiveMaximum: UInt16 = 64
    /// SEND, ACK and NACK frames held by all open transactions of one connection.
    public var maxTransactionFrames = 1024
    /// Sent in CONNECTED's `server` header.
    public var serverName = "Swiftlet"

    public init() {}
}

/// The STOMP 1.0/1.1/1.2 protocol of one connection, as a state machine: STOMP frames, the
/// broker's MQTT packets, the client socket's writability and the time go in; frames for the
/// client, MQTT packets for the broker and the close come out. Every STOMP rule of the gateway
/// lives here and is tested without a socket.
public struct StompChannel: Sendable {
    public enum Action: Sendable, Equatable {
        /// A frame for the client.
        case send(StompFrame)
        /// An end of line for the client (heart-beat).
        case heartbeat
        /// Opens the broker session with this CONNECT.
        case openSession(Packet)
        case toBroker(Packet)
        /// Flush what was sent to the client, close it and end the broker session.
        case close(String)
    }

    public enum Phase: Sendable, Equatable { case awaitingConnect, connecting, connected, closed }

    public enum AckMode: String, Sendable { case auto, client, clientIndividual = "client-individual" }

    struct Subscription: Sendable {
        var id: String
        var destination: StompDestination
        var ack: AckMode
        /// Unacknowledged MESSAGEs (ack client/client-individual): sequence and MQTT packet id.
        var unacked: Deque<(seq: UInt64, packetId: UInt16?)> = []
    }

    struct Filter: Sendable {
        var identifier: Int
        var refs: Int
    }

    enum Waiter: Sendable {
        case sendReceipt(String)
        case subscribe(id: String, receipt: String?)
        case unsubscribe(receipt: String?)
    }

    enum PingWaiter: Sendable {
        case receipt(String)
        case disconnect(receipt: String?)
    }

    public let config: StompChannelConfig
    public let clientId: String
    public private(set) var phase: Phase = .awaitingConnect
    public private(set) var version: StompVersion = .v1_0
    /// Messages for the client dropped because it did not read them fast enough (QoS 0).
    public private(set) var dropped = 0

    private var broker = BrokerClient()
    private var subscriptions: [String: Subscription] = [:]
    private var filters: [String: Filter] = [:]
    private var nextIdentifier = 1
    private var nextSeq: UInt64 = 1
    /// For each delivered message with a pending STOMP ack: the subscription holding it.
    private var ackIndex: [UInt64: String] = [:]
    /// QoS 1/2 messages delivered to subscriptions with acks still to come.
    private var awaitingClientAcks: [UInt16: (message: PublishPacket, remaining: Int)] = [:]
    private var waiters: [BrokerClient.Token: Waiter] = [:]
    private var nextToken: BrokerClient.Token = 1
    private var pingWaiters: Deque<PingWaiter> = []
    private var transactions: [String: [StompFrame]] = [:]
    private var transactionFrames = 0
    private var clientWritable = true
    /// QoS 1/2 messages that arrived while the client was not writable (bounded by the
    /// receive maximum: the broker sends no more until they are acknowledged).
    private var held: Deque<PublishPacket> = []
    private var sendEveryNs: UInt64 = 0
    private var receiveWithinNs: UInt64 = 0
    private var lastSent: UInt64 = 0
    private var lastReceived: UInt64 = 0
    private var disconnecting = false

    public init(config: StompChannelConfig, clientId: String) {
        self.config = config
        self.clientId = clientId
    }

    /// QoS 1/2 SENDs waiting for room in the broker's receive maximum: the connection stops
    /// reading its client while there are many.
    public var brokerBacklog: Int { broker.backlog }

    /// When `tick` must run next (monotonic nanoseconds), nil when no timer is needed.
    public var nextDeadline: UInt64? {
        guard phase == .connected || phase == .connecting else { return nil }
        var d: UInt64?
        if sendEveryNs > 0 { d = lastSent + sendEveryNs }
        if receiveWithinNs > 0 { d = min(d ?? .max, lastReceived + receiveWithinNs) }
        return d
    }

    // MARK: Inputs

    public mutating func receive(_ inbound: StompInbound, now: UInt64) -> [Action] {
        guard phase != .closed else { return [] }
        lastReceived = now
        guard case .frame(let frame) = inbound else { return [] }
        var out: [Action] = []
        handle(frame, now: now, into: &out)
        return stamp(out, now: now)
    }

    /// The decoder refused the client's bytes: ERROR naming the limit, and close.
    public mutating func decodeFailed(_ error: StompDecodeError, now: UInt64) -> [Action] {
        guard phase != .closed else { return [] }
        return stamp(fail(error.description, receipt: nil), now: now)
    }

    public mutating func brokerPackets(_ packets: [Packet], now: UInt64) -> [Action] {
        var out: [Action] = []
        for packet in packets {
            guard phase != .closed else { break }
            let (events, replies) = broker.receive(packet)
            out += replies.map { .toBroker($0) }
            for event in events { handle(event, into: &out) }
        }
        return stamp(out, now: now)
    }

    /// The broker ended the session (GW_CLOSE) or it could not be opened.
    public mutating func brokerClosed(_ reason: String, now: UInt64) -> [Action] {
        guard phase != .closed else { return [] }
        let message = phase == .connected ? "the broker ended the session" : "the broker is not available"
        return stamp(fail(message, detail: reason, receipt: nil), now: now)
    }

    public mutating func writabilityChanged(_ writable: Bool, now: UInt64) -> [Action] {
        clientWritable = writable
        guard writable, phase == .connected else { return [] }
        var out: [Action] = []
        while clientWritable, let p = held.popFirst() { deliver(p, into: &out) }
        return stamp(out, now: now)
    }

    public mutating func tick(now: UInt64) -> [Action] {
        guard phase == .connected || phase == .connecting else { return [] }
        if receiveWithinNs > 0 && now >= lastReceived + receiveWithinNs {
            return stamp(fail("heart-beat timeout", detail: "nothing received for \(receiveWithinNs / 1_000_000) ms", receipt: nil), now: now)
        }
        if sendEveryNs > 0 && now >= lastSent + sendEveryNs {
            lastSent = now
            return [.heartbeat]
        }
        return []
    }

    // MARK: Frames

    private mutating func handle(_ frame: StompFrame, now: UInt64, into out: inout [Action]) {
        if disconnecting { return }
        if phase == .awaitingConnect {
            guard frame.command == "CONNECT" || frame.command == "STOMP" else {
                out += fail("no frame is processed before CONNECT", receipt: frame["receipt"])
                return
            }
            out += connect(frame, now: now)
            return
        }
        switch frame.command {
        case "SEND": send(frame, into: &out)
        case "SUBSCRIBE": subscribe(frame, into: &out)
        case "UNSUBSCRIBE": unsubscribe(frame, into: &out)
        case "ACK": ack(frame, into: &out)
        case "NACK" where version >= .v1_1: ack(frame, into: &out)
        case "BEGIN", "COMMIT", "ABORT": transaction(frame, into: &out)
        case "DISCONNECT":
            pingWaiters.append(.disconnect(receipt: frame["receipt"]))
            out.append(.toBroker(.pingreq))
            // Frames after DISCONNECT are not processed; the receipt follows the broker's answer.
            disconnecting = true
        case "CONNECT", "STOMP": out += fail("already connected", receipt: frame["receipt"])
        default: out += fail("unknown command \(frame.command)", receipt: frame["receipt"])
        }
    }

    private mutating func connect(_ frame: StompFrame, now: UInt64) -> [Action] {
        let offered = (frame["accept-version"] ?? "1.0").split(separator: ",").compactMap {
            StompVersion(rawValue: trimmed($0))
        }
        guard let chosen = offered.max() else {
            return fail("supported protocol versions are 1.0,1.1,1.2", receipt: nil, extra: [("version", "1.0,1.1,1.2")])
        }
        version = chosen
        var login = frame["login"]
        var passcode = frame["passcode"]
        if login == nil {
            guard config.allowAnonymous else { return fail("login required", receipt: nil) }
            login = config.defaultLogin
            passcode = config.defaultPasscode
        }
        if version >= .v1_1, let hb = frame["heart-beat"] {
            let parts = hb.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count == 2, let cx = UInt64(trimmed(parts[0])),
                  let cy = UInt64(trimmed(parts[1])) else {
                return fail("invalid heart-beat header", receipt: nil)
            }
            let floor = UInt64(config.heartbeatMs)
            if floor > 0 {
                if cy > 0 { sendEveryNs = max(cy, floor) * 1_000_000 }
                // Twice the agreed interval before giving up: network delay and timer slack.
                if cx > 0 { receiveWithinNs = max(cx, floor) * 2_000_000 }
            }
        }
        lastSent = now
        lastReceived = now
        phase = .connecting
        let connect = BrokerClient.connect(clientId: clientId, username: login, password: passcode.map { Array($0.utf8) },
                                           keepAlive: 0, receiveMaximum: config.receiveMaximum)
        return [.openSession(connect)]
    }

    private mutating func send(_ frame: StompFrame, into out: inout [Action]) {
        guard let text = frame["destination"] else {
            out += fail("SEND without a destination header", receipt: frame["receipt"])
            return
        }
        guard let dest = StompDestination(text), dest.isValidTopicName else {
            out += fail("invalid destination \(text)", detail: "a SEND destination is /topic/<MQTT topic> or an MQTT topic, no wildcards",
                        receipt: frame["receipt"])
            return
        }
        if let tx = frame["transaction"] {
            buffer(frame, in: tx, into: &out)
            return
        }
        let receipt = frame["receipt"]
        var qos: QoS = receipt == nil ? .atMostOnce : .atLeastOnce
        if let q = frame["qos"] {
            guard let v = UInt8(q), let parsed = QoS(rawValue: v) else {
                out += fail("invalid qos header \(q)", receipt: receipt)
                return
            }
            qos = parsed
        }
        var props = Properties()
        if let ct = frame["content-type"] { props.items.append(.contentType(ct)) }
        var token: BrokerClient.Token?
        if let receipt, qos != .atMostOnce {
            token = newToken(.sendReceipt(receipt))
        }
        if let p = broker.publish(topic: dest.topic, payload: frame.body, qos: qos, retain: frame["retain"] == "true",
                                  properties: props, token: token) {
            out.append(.toBroker(p))
        }
        if let receipt, qos == .atMostOnce { pingReceipt(receipt, into: &out) }
    }

    private mutating func subscribe(_ frame: StompFrame, into out: inout [Action]) {
        let receipt = frame["receipt"]
        guard let text = frame["destination"] else {
            out += fail("SUBSCRIBE without a destination header", receipt: receipt)
            return
        }
        guard let id = frame["id"] ?? (version == .v1_0 ? text : nil) else {
            out += fail("SUBSCRIBE without an id header", receipt: receipt)
            return
        }
        guard subscriptions[id] == nil else {
            out += fail("subscription id \(id) is already in use", receipt: receipt)
            return
        }
        guard let dest = StompDestination(text), dest.isValidFilter else {
            out += fail("invalid destination \(text)", detail: "a SUBSCRIBE destination is /topic/<MQTT filter> or an MQTT filter",
                        receipt: receipt)
            return
        }
        guard let ack = AckMode(rawValue: frame["ack"] ?? "auto"), version >= .v1_1 || ack != .clientIndividual else {
            out += fail("invalid ack mode \(frame["ack"] ?? "")", receipt: receipt)
            return
        }
        subscriptions[id] = Subscription(id: id, destination: dest, ack: ack)
        if var f = filters[dest.topic] {
            f.refs += 1
            filters[dest.topic] = f
            if let receipt { pingReceipt(receipt, into: &out) }
            return
        }
        let identifier = nextIdentifier
        nextIdentifier += 1
        filters[dest.topic] = Filter(identifier: identifier, refs: 1)
        let token = newToken(.subscribe(id: id, receipt: receipt))
        out.append(.toBroker(broker.subscribe([TopicSubscription(filter: dest.topic, qos: .atLeastOnce)],
                                              identifier: identifier, token: token)))
    }

    private mutating func unsubscribe(_ frame: StompFrame, into out: inout [Action]) {
        let receipt = frame["receipt"]
        guard let id = frame["id"] ?? (version == .v1_0 ? frame["destination"] : nil) else {
            out += fail("UNSUBSCRIBE without an id header", receipt: receipt)
            return
        }
        guard let sub = subscriptions.removeValue(forKey: id) else {
            out += fail("no subscription with id \(id)", receipt: receipt)
            return
        }
        // What the client never acknowledged is given up: acknowledged to the broker.
        for (seq, pid) in sub.unacked {
            ackIndex[seq] = nil
            release(pid, into: &out)
        }
        var f = filters[sub.destination.topic]!
        f.refs -= 1
        if f.refs > 0 {
            filters[sub.destination.topic] = f
            if let receipt { pingReceipt(receipt, into: &out) }
            return
        }
        filters[sub.destination.topic] = nil
        let token = newToken(.unsubscribe(receipt: receipt))
        out.append(.toBroker(broker.unsubscribe([sub.destination.topic], token: token)))
    }

    private mutating func ack(_ frame: StompFrame, into out: inout [Action]) {
        let receipt = frame["receipt"]
        let header = version == .v1_2 ? "id" : "message-id"
        guard let idText = frame[header] else {
            out += fail("\(frame.command) without an \(header) header", receipt: receipt)
            return
        }
        if let tx = frame["transaction"] {
            buffer(frame, in: tx, into: &out)
            return
        }
        guard let seq = UInt64(idText), seq < nextSeq else {
            out += fail("\(frame.command) for unknown message \(idText)", receipt: receipt)
            return
        }
        // A message already acknowledged (e.g. by a cumulative ACK) is a no-op.
        if let subId = ackIndex[seq], var sub = subscriptions[subId] {
            if sub.ack == .client {
                while let first = sub.unacked.first, first.seq <= seq {
                    sub.unacked.removeFirst()
                    ackIndex[first.seq] = nil
                    release(first.packetId, into: &out)
                }
            } else if let i = sub.unacked.firstIndex(where: { $0.seq == seq }) {
                let pid = sub.unacked.remove(at: i).packetId
                ackIndex[seq] = nil
                release(pid, into: &out)
            }
            subscriptions[subId] = sub
        }
        if let receipt { pingReceipt(receipt, into: &out) }
    }

    private mutating func transaction(_ frame: StompFrame, into out: inout [Action]) {
        let receipt = frame["receipt"]
        guard let tx = frame["transaction"] else {
            out += fail("\(frame.command) without a transaction header", receipt: receipt)
            return
        }
        switch frame.command {
        case "BEGIN":
            guard transactions[tx] == nil else {
                out += fail("transaction \(tx) is already open", receipt: receipt)
                return
            }
            guard transactionFrames < config.maxTransactionFrames else {
                out += fail("too many transactions open", receipt: receipt)
                return
            }
            transactions[tx] = []
            transactionFrames += 1
        case "COMMIT", "ABORT":
            guard let frames = transactions.removeValue(forKey: tx) else {
                out += fail("no transaction \(tx)", receipt: receipt)
                return
            }
            transactionFrames -= frames.count + 1
            if frame.command == "COMMIT" {
                for var f in frames {
                    f.headers.removeAll { $0.0 == "transaction" }
                    handle(f, now: lastReceived, into: &out)
                    if phase == .closed { return }
                }
            }
        default: break
        }
        if let receipt { pingReceipt(receipt, into: &out) }
    }

    private mutating func buffer(_ frame: StompFrame, in tx: String, into out: inout [Action]) {
        guard transactions[tx] != nil else {
            out += fail("no transaction \(tx)", receipt: frame["receipt"])
            return
        }
        guard transactionFrames < config.maxTransactionFrames else {
            out += fail("transaction too large", detail: "at most \(config.maxTransactionFrames) frames in open transactions",
                        receipt: frame["receipt"])
            return
        }
        transactions[tx]!.append(frame)
        transactionFrames += 1
    }

    // MARK: The broker's events

    private mutating func handle(_ event: BrokerClient.Event, into out: inout [Action]) {
        switch event {
        case .connected:
            guard phase == .connecting else { return }
            phase = .connected
            var headers = [("version", version.rawValue)]
            if version >= .v1_1 {
                let hb = config.heartbeatMs
                headers.append(("heart-beat", "\(hb),\(hb)"))
            }
            headers += [("server", config.serverName), ("session", clientId)]
            out.append(.send(StompFrame("CONNECTED", headers)))
        case .refused(let code, let reason):
            out += fail("login refused", detail: reason ?? Self.describe(code), receipt: nil)
        case .published(let token, let code):
            guard case .sendReceipt(let receipt) = waiters.removeValue(forKey: token) else { return }
            if code.rawValue >= 0x80 {
                out += fail("publish refused", detail: Self.describe(code), receipt: receipt)
            } else {
                out.append(.send(StompFrame("RECEIPT", [("receipt-id", receipt)])))
            }
        case .subscribed(let token, let codes):
            guard case .subscribe(let id, let receipt) = waiters.removeValue(forKey: token) else { return }
            if let code = codes.first, code.rawValue >= 0x80 {
                if let sub = subscriptions.removeValue(forKey: id) { filters[sub.destination.topic] = nil }
                out += fail("subscription refused", detail: Self.describe(code), receipt: receipt)
            } else if let receipt {
                out.append(.send(StompFrame("RECEIPT", [("receipt-id", receipt)])))
            }
        case .unsubscribed(let token):
            if case .unsubscribe(let receipt?) = waiters.removeValue(forKey: token) {
                out.append(.send(StompFrame("RECEIPT", [("receipt-id", receipt)])))
            }
        case .pong:
            guard let w = pingWaiters.popFirst() else { return }
            switch w {
            case .receipt(let r):
                out.append(.send(StompFrame("RECEIPT", [("receipt-id", r)])))
            case .disconnect(let r):
                if let r { out.append(.send(StompFrame("RECEIPT", [("receipt-id", r)]))) }
                out.append(.toBroker(.disconnect(DisconnectPacket())))
                out.append(.close("DISCONNECT"))
                phase = .closed
            }
        case .message(let p):
            if phase != .connected || disconnecting {
                if let ack = broker.acknowledge(p) { out.append(.toBroker(ack)) }
            } else if !clientWritable {
                if p.qos == .atMostOnce {
                    dropped += 1
                } else {
                    held.append(p)
                }
            } else {
                deliver(p, into: &out)
            }
        case .disconnected(let code, let reason):
            out += fail("disconnected by the broker", detail: reason ?? Self.describe(code), receipt: nil)
        case .violation(let what):
            out += fail("gateway session failed", detail: what, receipt: nil)
        }
    }

    private mutating func deliver(_ p: PublishPacket, into out: inout [Action]) {
        let ids = p.properties.subscriptionIdentifiers
        var targets: [String] = []
        for (topic, f) in filters where ids.isEmpty ? TopicMatch.matches(filter: topic, topic: p.topic) : ids.contains(f.identifier) {
            for (id, sub) in subscriptions where sub.destination.topic == topic { targets.append(id) }
        }
        targets.sort()
        var pendingAcks = 0
        for id in targets {
            var sub = subscriptions[id]!
            let seq = nextSeq
            nextSeq += 1
            var headers = [("destination", sub.destination.destination(for: p.topic)), ("message-id", "\(seq)"),
                           ("subscription", id)]
            if sub.ack != .auto {
                if version == .v1_2 { headers.append(("ack", "\(seq)")) }
                sub.unacked.append((seq, p.packetId))
                ackIndex[seq] = id
                subscriptions[id] = sub
                if p.packetId != nil { pendingAcks += 1 }
            }
            if let ct = p.properties.contentType { headers.append(("content-type", ct)) }
            out.append(.send(StompFrame("MESSAGE", headers, body: p.payload)))
        }
        if pendingAcks > 0, let pid = p.packetId {
            awaitingClientAcks[pid] = (p, pendingAcks)
        } else if let ack = broker.acknowledge(p) {
            out.append(.toBroker(ack))
        }
    }

    /// One STOMP acknowledgement of a message with MQTT packet id `pid` (nil: QoS 0).
    private mutating func release(_ pid: UInt16?, into out: inout [Action]) {
        guard let pid, var entry = awaitingClientAcks[pid] else { return }
        entry.remaining -= 1
        if entry.remaining > 0 {
            awaitingClientAcks[pid] = entry
            return
        }
        awaitingClientAcks[pid] = nil
        if let ack = broker.acknowledge(entry.message) { out.append(.toBroker(ack)) }
    }

    // MARK: Helpers

    private mutating func newToken(_ w: Waiter) -> BrokerClient.Token {
        let t = nextToken
        nextToken += 1
        waiters[t] = w
        return t
    }

    /// A RECEIPT sent once the broker has handled everything before it: PINGREQ, and the
    /// RECEIPT on PINGRESP (the broker answers packets in order).
    private mutating func pingReceipt(_ receipt: String, into out: inout [Action]) {
        pingWaiters.append(.receipt(receipt))
        out.append(.toBroker(.pingreq))
    }

    /// The one place a STOMP error becomes wire actions: an ERROR frame with a `message`
    /// header (and `receipt-id` when the failing frame asked for a receipt), then the close.
    private mutating func fail(_ message: String, detail: String? = nil, receipt: String?,
                               extra: [(String, String)] = []) -> [Action] {
        phase = .closed
        var headers = extra + [("message", message), ("content-type", "text/plain")]
        if let receipt { headers.append(("receipt-id", receipt)) }
        var body = ByteBuffer()
        body.writeString((detail ?? message) + "\n")
        return [.send(StompFrame("ERROR", headers, body: body)), .close(message)]
    }

    private mutating func stamp(_ actions: [Action], now: UInt64) -> [Action] {
        if actions.contains(where: { if case .send = $0 { return true }; return false }) { lastSent = now }
        return actions
    }

    static func describe(_ code: ReasonCode) -> String {
        switch code.rawValue {
        case 0x86: return "bad user name or password"
        case 0x87: return "not authorized"
        case 0x85: return "client identifier not valid"
        case 0x8A: return "banned"
        case 0x88, 0x89: return "server unavailable"
        case 0x8E: return "session taken over"
        case 0x8F, 0x90: return "topic invalid"
        case 0x97: return "quota exceeded"
        case 0x98: return "administrative action"
        default: return "MQTT reason code 0x" + String(code.rawValue, radix: 16, uppercase: true)
        }
    }
}

private func trimmed(_ s: Substring) -> String {
    String(s.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
}
