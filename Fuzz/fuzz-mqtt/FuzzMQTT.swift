// libFuzzer target: MQTT bytes from a client, through the decoder into the connection state
// machine, as MQTTConnectionHandler does it (docs/fuzzing.md).
//
// Input: one mode byte (see `Mode`), then the byte stream. Checked beyond "no crash, no hang":
// - the decoder yields the same packets and the same error whether the stream arrives whole
//   or a few bytes at a time;
// - every decoded packet re-encodes (`encode(into:version:)`, exactly `encodedLength` bytes)
//   to bytes that decode to an equal packet;
// - every packet the state machine has sent (CONNACK, DISCONNECT, PINGRESP) round-trips the
//   same way and, once `fitting`, respects the client's Maximum Packet Size;
// - what the state machine routes or subscribes is well formed: a PUBLISH topic non-empty,
//   without wildcards and within the limits, topic filters non-empty.
import MQTTCodec
import NIOCore
import SwiftletConfig
import MQTTProtocol

/// The first input byte.
struct Mode {
    let raw: UInt8
    /// Bits 0-1: 0 = a server stream (the first packet must be CONNECT and sets the version,
    /// as on a listener); 1 = 3.1.1, 2 = 5.0, 3 = 3.1 from the first byte (any packet type).
    var presetVersion: ProtocolVersion? { [nil, .v3_1_1, .v5, .v3_1][Int(raw & 0x03)] }
    /// Bit 2: strict_utf8.
    var strictUTF8: Bool { raw & 0x04 != 0 }
    /// Bit 3: small limits (packet size, aliases, receive maximum, QoS, topic length ...).
    var tightLimits: Bool { raw & 0x08 != 0 }
    /// Bit 4: the auth chain refuses the CONNECT.
    var refuseAuth: Bool { raw & 0x10 != 0 }
    /// Bit 5: the attached session was present.
    var sessionPresent: Bool { raw & 0x20 != 0 }
    /// Bit 6: 100 s between packets instead of 1 s (keep alive, idle timeout, retry).
    var slowClock: Bool { raw & 0x40 != 0 }
    /// Bit 7: the drip-feed chunk is 1 byte instead of 7.
    var chunk: Int { raw & 0x80 != 0 ? 1 : 7 }

    var config: MQTTConfig {
        var m = MQTTConfig()
        m.strictUTF8 = strictUTF8
        if tightLimits {
            m.maxPacketSize = 256
            m.maxClientIdLength = 23
            m.maxTopicLevels = 3
            m.maxTopicLength = 16
            m.maxTopicAlias = 2
            m.receiveMaximum = 2
            m.maxAwaitingRel = 2
            m.retryInterval = 1
            m.sessionExpiryInterval = 0
            m.maxSessionExpiryInterval = 60
            m.serverKeepAlive = 5
            m.maxQoS = 1
            m.retainAvailable = false
            m.wildcardSubscription = false
            m.sharedSubscription = false
        }
        return m
    }
}

/// Packets until the decoder wants more bytes, then the error that ended the stream (if any).
/// `versions[i]`: the decoder's version before packet i (what it was decoded with).
struct Decoded {
    var packets: [Packet] = []
    var versions: [ProtocolVersion?] = []
    var error: String?
    var thrown: Error?
}

func decodeStream(_ bytes: ArraySlice<UInt8>, mode: Mode, maxPacketSize: Int, chunk: Int) -> Decoded {
    var decoder = MQTTPacketDecoder(maxPacketSize: maxPacketSize, version: mode.presetVersion, strictUTF8: mode.strictUTF8)
    var buffer = ByteBuffer()
    var out = Decoded()
    var offset = bytes.startIndex
    repeat {
        let end = min(offset + chunk, bytes.endIndex)
        buffer.writeBytes(bytes[offset..<end])
        offset = end
        do {
            while true {
                let before = decoder.decoder.version
                guard let packet = try decoder.decode(buffer: &buffer) else { break }
                out.packets.append(packet)
                out.versions.append(before)
            }
        } catch {
            out.error = "\(type(of: error)): \(error)"
            out.thrown = error
            return out
        }
    } while offset < bytes.endIndex
    return out
}

/// `packet` encoded with `version` decodes, with the same rules, to an equal packet.
func checkRoundTrip(_ packet: Packet, version: ProtocolVersion?, strict: Bool, what: String) {
    let v = version ?? .v3_1_1
    var bytes = ByteBuffer()
    packet.encode(into: &bytes, version: v)
    precondition(bytes.readableBytes == packet.encodedLength(version: v),
                 "\(what): encodedLength \(packet.encodedLength(version: v)) but \(bytes.readableBytes) bytes written: \(packet)")
    var decoder = MQTTDecoder(version: version, maxPacketSize: .max, strictUTF8: strict)
    let again: Packet?
    do {
        again = try decoder.decode(buffer: &bytes)
    } catch {
        preconditionFailure("\(what): re-encoded \(packet) (\(v)) does not decode: \(error)")
    }
    var expected = packet
    if case .connack(var c) = packet, v != .v5 {
        // A 3.x CONNACK carries the 3.x return code of the same meaning, and no properties.
        c.reasonCode = ReasonCode(c.reasonCode.v3ConnackCode)
        c.properties = Properties()
        expected = .connack(c)
    }
    precondition(again == expected, "\(what): \(packet) (\(v)) re-decodes as \(String(describing: again))")
    precondition(bytes.readableBytes == 0, "\(what): \(bytes.readableBytes) bytes left after re-decoding \(packet)")
}

/// The QoS 2 packet ids awaiting PUBREL, kept as the session would; acknowledgements fit by a
/// fixed rule on the packet id so every `AckFit` occurs.
struct FakeSession: SessionView {
    var awaitingRel: Set<UInt16> = []
    func awaitingRelease(_ packetId: UInt16) -> Bool { awaitingRel.contains(packetId) }
    var awaitingReleaseCount: Int { awaitingRel.count }
    func fit(_ ack: AckKind, _ packetId: UInt16) -> AckFit {
        [.unknown, .fits, .breaksFlow, .fits][Int(packetId % 4)]
    }
}

/// Runs the packets through a state machine, executing its actions as the handler would.
struct Connection {
    let mode: Mode
    let config: MQTTConfig
    var machine: ConnectionStateMachine
    var session = FakeSession()
    var now: UInt64 = 1_000_000_000
    var held: [Packet] = []
    var open = true
    /// The auth chain answers after the next packet (which is held meanwhile) or at the end.
    var authPending = false

    init(mode: Mode) {
        self.mode = mode
        self.config = mode.config
        self.machine = ConnectionStateMachine(policy: ConnectionPolicy(config), now: now)
    }

    mutating func receive(_ packet: Packet) {
        guard open else { return }
        let answerAfter = authPending
        machine.activity(now: now)
        execute(machine.received(packet, now: now, session: session), packet: packet)
        if answerAfter { answerAuth() }
    }

    mutating func answerAuth() {
        guard open, authPending else { return }
        authPending = false
        let refusal = machine.authenticated(!mode.refuseAuth)
        guard refusal == .none else { return execute(refusal, packet: nil) }
        send(machine.attached(sessionPresent: mode.sessionPresent, now: now))
        let pending = held
        held = []
        for p in pending { receive(p) }
    }

    mutating func advance() {
        guard open else { return }
        now += mode.slowClock ? 100_000_000_000 : 1_000_000_000
        execute(machine.tick(now: now), packet: nil)
    }

    mutating func failed(_ error: Error) {
        guard open else { return }
        execute(machine.decodingFailed(error), packet: nil)
        precondition(!open, "a decoding error left the connection open: \(error)")
    }

    mutating func send(_ packet: Packet) {
        checkRoundTrip(packet, version: machine.version, strict: false, what: "sent")
        let (fitted, close) = machine.fitting(packet)
        if let fitted {
            precondition(fitted.encodedLength(version: machine.version) <= machine.clientMaxPacketSize,
                         "\(fitted) over the client's Maximum Packet Size \(machine.clientMaxPacketSize)")
        }
        if close { closeConnection() }
    }

    mutating func closeConnection() {
        open = false
        machine.closed()
    }

    mutating func execute(_ action: ConnectionStateMachine.Action, packet: Packet?) {
        switch action {
        case .none, .acknowledge, .acknowledged, .retry:
            break
        case .hold:
            held.append(packet!)
        case .send(let p):
            send(p)
        case .close, .clientDisconnect:
            closeConnection()
        case .disconnect(let d, _):
            precondition(machine.version == .v5, "DISCONNECT with a reason code to a \(machine.version) client")
            send(.disconnect(d))
            closeConnection()
        case .refuse(let c, _):
            precondition(c.reasonCode != .success, "a refusal with CONNACK 0x00")
            send(.connack(c))
            closeConnection()
        case .authenticate:
            authPending = true
        case .publish(let p, let topic):
            precondition(!topic.isEmpty, "routing a PUBLISH with an empty topic: \(p)")
            precondition(!topic.contains("+") && !topic.contains("#"), "routing a PUBLISH to wildcard topic \(topic)")
            precondition(topic.utf8.count <= config.maxTopicLength, "routing a topic over max_topic_length")
            precondition(Int(p.qos.rawValue) <= config.maxQoS, "routing QoS \(p.qos) over max_qos")
            if p.qos == .exactlyOnce, let id = p.packetId { session.awaitingRel.insert(id) }
        case .duplicate(let p):
            precondition(p.packetId.map(session.awaitingRel.contains) == true, "duplicate of a packet id not awaiting PUBREL")
        case .release(let a):
            session.awaitingRel.remove(a.packetId)
        case .subscribe(let s):
            precondition(!s.subscriptions.isEmpty, "SUBSCRIBE without a filter")
            precondition(s.subscriptions.allSatisfy { !$0.filter.isEmpty }, "a zero-length topic filter: \(s)")
        case .unsubscribe(let u):
            precondition(!u.filters.isEmpty, "UNSUBSCRIBE without a filter")
            precondition(u.filters.allSatisfy { !$0.isEmpty }, "a zero-length topic filter: \(u)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMQTT(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let mode = Mode(raw: input[0])
    let stream = input[1...]
    let maxPacketSize = mode.config.maxPacketSize

    let whole = decodeStream(stream, mode: mode, maxPacketSize: maxPacketSize, chunk: max(stream.count, 1))
    let drip = decodeStream(stream, mode: mode, maxPacketSize: maxPacketSize, chunk: mode.chunk)
    precondition(whole.packets == drip.packets && whole.error == drip.error,
                 "whole and chunked decoding differ: \(whole.packets) \(whole.error ?? "") vs \(drip.packets) \(drip.error ?? "")")

    for (packet, version) in zip(whole.packets, whole.versions) {
        checkRoundTrip(packet, version: version, strict: mode.strictUTF8, what: "decoded")
    }

    var connection = Connection(mode: mode)
    for packet in whole.packets {
        connection.receive(packet)
        connection.advance()
    }
    if let error = whole.thrown { connection.failed(error) }
    connection.answerAuth()
    for _ in 0..<3 { connection.advance() }
    return 0
}
