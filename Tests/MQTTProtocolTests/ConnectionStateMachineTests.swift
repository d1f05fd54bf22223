import SwiftletConfig
import MQTTCodec
import SwiftletRouting
import NIOCore
import XCTest
@testable import MQTTProtocol

/// The MQTT rules of one connection, driven through `ConnectionStateMachine` alone: no
/// channel, no broker, time from a manual clock (nanoseconds).
final class ConnectionStateMachineTests: XCTestCase {
    typealias Action = ConnectionStateMachine.Action
    static let second: UInt64 = 1_000_000_000

    /// A session view with QoS 2 ids awaiting PUBREL and acks' fit chosen by the test.
    struct FakeSession: SessionView {
        var awaiting: Set<UInt16> = []
        var fits: [UInt16: AckFit] = [:]
        func awaitingRelease(_ packetId: UInt16) -> Bool { awaiting.contains(packetId) }
        var awaitingReleaseCount: Int { awaiting.count }
        func fit(_ ack: AckKind, _ packetId: UInt16) -> AckFit { fits[packetId] ?? .unknown }
    }

    private func machine(_ configure: (inout MQTTConfig) -> Void = { _ in }, now: UInt64 = 0) -> ConnectionStateMachine {
        var c = MQTTConfig()
        configure(&c)
        return ConnectionStateMachine(policy: ConnectionPolicy(c), now: now)
    }

    private func connect(_ version: ProtocolVersion = .v5, id: String = "c", clean: Bool = true, keepAlive: UInt16 = 0,
                         props: Properties = Properties(), will: Will? = nil, user: String? = nil) -> Packet {
        .connect(ConnectPacket(protocolVersion: version, cleanStart: clean, keepAlive: keepAlive, properties: props,
                               clientId: id, will: will, username: user))
    }

    /// A machine through CONNECT, authentication and CONNACK.
    private func connected(_ version: ProtocolVersion = .v5, keepAlive: UInt16 = 0, props: Properties = Properties(),
                           configure: (inout MQTTConfig) -> Void = { _ in }) -> ConnectionStateMachine {
        var m = machine(configure)
        guard case .authenticate = m.received(connect(version, keepAlive: keepAlive, props: props), now: 0, session: NoSession()) else {
            XCTFail("CONNECT not accepted")
            return m
        }
        XCTAssertEqual(m.authenticated(true), .none)
        _ = m.attached(sessionPresent: false, now: 0)
        return m
    }

    private func refusal(_ a: Action) -> ReasonCode? {
        if case .refuse(let ack, _) = a { return ack.reasonCode }
        return nil
    }

    private func disconnectCode(_ a: Action) -> ReasonCode? {
        if case .disconnect(let d, _) = a { return d.reasonCode }
        return nil
    }

    private func publish(_ topic: String, qos: QoS = .atMostOnce, id: UInt16? = nil, props: Properties = Properties()) -> Packet {
        .publish(PublishPacket(qos: qos, topic: topic, packetId: id, properties: props, payload: ByteBuffer(string: "x")))
    }

    // MARK: CONNECT

    func testFirstPacketMustBeConnect() {
        var m = machine()
        XCTAssertEqual(m.received(.pingreq, now: 0, session: NoSession()), .close)
    }

    func testPacketsBeforeCONNACKAreHeld() {
        var m = machine()
        _ = m.received(connect(), now: 0, session: NoSession())
        XCTAssertEqual(m.phase, .connecting)
        XCTAssertEqual(m.received(.pingreq, now: 0, session: NoSession()), .hold)
    }

    func testEmptyClientIdRules() {
        var m5 = machine()
        guard case .authenticate = m5.received(connect(.v5, id: ""), now: 0, session: NoSession()) else { return XCTFail() }
        XCTAssertTrue(m5.connectRequest!.assigned)
        XCTAssertTrue(m5.clientId.hasPrefix("swiftlet-"))
        let ack = m5.attached(sessionPresent: false, now: 0)
        guard case .connack(let c) = ack else { return XCTFail() }
        XCTAssertEqual(c.properties.items.first, .assignedClientIdentifier(m5.clientId))

        var m311 = machine()
        guard case .authenticate = m311.received(connect(.v3_1_1, id: "", clean: true), now: 0, session: NoSession()) else { return XCTFail() }
        var persistent = machine()
        XCTAssertEqual(refusal(persistent.received(connect(.v3_1_1, id: "", clean: false), now: 0, session: NoSession())),
                       .clientIdentifierNotValid)
        var v31 = machine()
        XCTAssertEqual(refusal(v31.received(connect(.v3_1, id: ""), now: 0, session: NoSession())), .clientIdentifierNotValid)
        var long = machine { $0.maxClientIdLength = 4 }
        XCTAssertEqual(refusal(long.received(connect(id: "abcde"), now: 0, session: NoSession())), .clientIdentifierNotValid)
    }

    func testEnhancedAuthenticationIsRefused() {
        var m = machine()
        XCTAssertEqual(refusal(m.received(connect(props: [.authenticationMethod("SCRAM")]), now: 0, session: NoSession())),
                       .badAuthenticationMethod)
    }

    func testWillChecks() {
        let cases: [(Will, (inout MQTTConfig) -> Void, ReasonCode)] = [
            (Will(topic: "a/b/c", payload: ByteBuffer(), qos: .atMostOnce, retain: false), { $0.maxTopicLevels = 2 }, .topicNameInvalid),
            (Will(topic: "w", payload: ByteBuffer(), qos: .exactlyOnce, retain: false), { $0.maxQoS = 1 }, .qosNotSupported),
            (Will(topic: "w", payload: ByteBuffer(), qos: .atMostOnce, retain: true), { $0.retainAvailable = false }, .retainNotSupported),
            (Will(topic: "$SYS/x", payload: ByteBuffer(), qos: .atMostOnce, retain: false), { _ in }, .notAuthorized),
        ]
        for (w, cfg, code) in cases {
            var m = machine(cfg)
            XCTAssertEqual(refusal(m.received(connect(will: w), now: 0, session: NoSession())), code)
        }
        var ok = machine()
        let w = Will(topic: "w", payload: ByteBuffer(string: "bye"), qos: .atLeastOnce, retain: false)
        XCTAssertEqual(ok.received(connect(will: w), now: 0, session: NoSession()), .authenticate(password: nil, will: w))
    }

    func testRefusedAuthenticationCode() {
        var anon = machine()
        _ = anon.received(connect(), now: 0, session: NoSession())
        XCTAssertEqual(refusal(anon.authenticated(false)), .notAuthorized)
        var named = machine()
        _ = named.received(connect(user: "u"), now: 0, session: NoSession())
        XCTAssertEqual(refusal(named.authenticated(false)), .badUserNameOrPassword)
    }

    func testBannedClientIsRefusedWithBanned() {
        var m = machine()
        _ = m.received(connect(user: "u"), now: 0, session: NoSession())
        XCTAssertEqual(refusal(m.banned()), .banned)
        XCTAssertEqual(ReasonCode.banned.v3ConnackCode, 5, "3.x has no banned code: not authorized")
        _ = m.attached(sessionPresent: false, now: 0)
        guard case .none = m.banned() else { return XCTFail("a connected client is not refused again") }
    }

    func testSessionExpiry() {
        var m5 = machine { $0.maxSessionExpiryInterval = 100 }
        _ = m5.received(connect(.v5, props: [.sessionExpiryInterval(1000)]), now: 0, session: NoSession())
        XCTAssertEqual(m5.sessionExpiry, 100)
        guard case .connack(let c) = m5.attached(sessionPresent: false, now: 0) else { return XCTFail() }
        XCTAssertTrue(c.properties.items.contains(.sessionExpiryInterval(100)), "a capped expiry is returned")

        var clean = machine()
        _ = clean.received(connect(.v3_1_1, clean: true), now: 0, session: NoSession())
        XCTAssertEqual(clean.sessionExpiry, 0)
        var persistent = machine { $0.sessionExpiryInterval = 7200 }
        _ = persistent.received(connect(.v3_1_1, clean: false), now: 0, session: NoSession())
        XCTAssertEqual(persistent.sessionExpiry, 7200)
        var forever = machine { $0.sessionExpiryInterval = 0 }
        _ = forever.received(connect(.v3_1_1, clean: false), now: 0, session: NoSession())
        XCTAssertEqual(forever.sessionExpiry, .max)
    }

    func testSessionExpiryOnDisconnect() {
        var zero = connected(.v5)
        let bad = zero.received(.disconnect(DisconnectPacket(reasonCode: .success, properties: [.sessionExpiryInterval(10)])),
                                now: 0, session: NoSession())
        XCTAssertEqual(disconnectCode(bad), .protocolError, "expiry set on DISCONNECT after 0 on CONNECT")

        var some = connected(.v5, props: [.sessionExpiryInterval(60)]) { $0.maxSessionExpiryInterval = 300 }
        XCTAssertEqual(some.received(.disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage,
                                                                  properties: [.sessionExpiryInterval(1000)])),
                                     now: 0, session: NoSession()), .clientDisconnect(withWill: true))
        XCTAssertEqual(some.sessionExpiry, 300)
    }

    func testCONNACKAnnouncesLimits() {
        let m = connected(.v5) {
            $0.receiveMaximum = 10
            $0.maxQoS = 1
            $0.retainAvailable = false
            $0.maxPacketSize = 4096
            $0.maxTopicAlias = 8
            $0.wildcardSubscription = false
            $0.sharedSubscription = false
            $0.serverKeepAlive = 30
        }
        XCTAssertEqual(m.keepAlive, 30, "server keep alive imposed on 5.0")
        var m2 = machine {
            $0.receiveMaximum = 10
            $0.maxQoS = 1
        }
        _ = m2.received(connect(.v5, props: [.requestResponseInformation(1)]), now: 0, session: NoSession())
        guard case .connack(let c) = m2.attached(sessionPresent: true, now: 0) else { return XCTFail() }
        XCTAssertTrue(c.sessionPresent)
        XCTAssertTrue(c.properties.items.contains(.receiveMaximum(10)))
        XCTAssertTrue(c.properties.items.contains(.maximumQoS(1)))
        XCTAssertTrue(c.properties.items.contains(.responseInformation("swiftlet/response/c")))
        var v3 = machine()
        _ = v3.received(connect(.v3_1_1), now: 0, session: NoSession())
        guard case .connack(let c3) = v3.attached(sessionPresent: false, now: 0) else { return XCTFail() }
        XCTAssertTrue(c3.properties.items.isEmpty)
    }

    // MARK: Time

    func testIdleTimeoutBeforeConnect() {
        var m = machine({ $0.idleTimeout = 15 }, now: 0)
        XCTAssertEqual(m.tick(now: 14 * Self.second), .none)
        XCTAssertEqual(m.tick(now: 15 * Self.second), .close)
    }

    func testKeepAliveIsOneAndAHalfTimesTheInterval() {
        for version in [ProtocolVersion.v3_1_1, .v5] {
            var m = connected(version, keepAlive: 10)
            XCTAssertEqual(m.tick(now: 14 * Self.second), .none)
            m.activity(now: 14 * Self.second)
            XCTAssertEqual(m.tick(now: 28 * Self.second), .none)
            let late = m.tick(now: 29 * Self.second)
            if version == .v5 {
                XCTAssertEqual(disconnectCode(late), .keepAliveTimeout)
            } else {
                XCTAssertEqual(late, .close)
            }
        }
    }

    func testKeepAliveZeroNeverExpires() {
        var m = connected(.v5, keepAlive: 0)
        XCTAssertEqual(m.tick(now: 1_000_000 * Self.second), .none)
    }

    func testKeepAliveAppliesWhileAuthenticating() {
        var m = machine()
        _ = m.received(connect(.v5, keepAlive: 2), now: 0, session: NoSession())
        XCTAssertEqual(disconnectCode(m.tick(now: 3 * Self.second)), .keepAliveTimeout)
    }

    func testRetryOnlyFor3x() {
        var v3 = connected(.v3_1_1) { $0.retryInterval = 5 }
        XCTAssertEqual(v3.tick(now: 4 * Self.second), .none)
        XCTAssertEqual(v3.tick(now: 5 * Self.second), .retry(cutoff: 0))
        XCTAssertEqual(v3.tick(now: 9 * Self.second), .none)
        XCTAssertEqual(v3.tick(now: 10 * Self.second), .retry(cutoff: 5 * Self.second))
        var v5 = connected(.v5) { $0.retryInterval = 5 }
        XCTAssertEqual(v5.tick(now: 100 * Self.second), .none, "5.0 resends only on reconnect")
    }

    // MARK: PUBLISH

    func testTopicAliases() {
        var m = connected(.v5) { $0.maxTopicAlias = 4 }
        let s = FakeSession()
        XCTAssertEqual(m.received(publish("a/b", props: [.topicAlias(1)]), now: 0, session: s),
                       .publish(PublishPacket(topic: "a/b", properties: [.topicAlias(1)], payload: ByteBuffer(string: "x")), topic: "a/b"))
        guard case .publish(_, let topic) = m.received(publish("", props: [.topicAlias(1)]), now: 0, session: s) else { return XCTFail() }
        XCTAssertEqual(topic, "a/b")
        XCTAssertEqual(disconnectCode(m.received(publish("", props: [.topicAlias(2)]), now: 0, session: s)), .protocolError)
        var m2 = connected(.v5) { $0.maxTopicAlias = 4 }
        XCTAssertEqual(disconnectCode(m2.received(publish("t", props: [.topicAlias(5)]), now: 0, session: s)), .topicAliasInvalid)
        var m3 = connected(.v5) { $0.maxTopicAlias = 4 }
        XCTAssertEqual(disconnectCode(m3.received(publish("t", props: [.topicAlias(0)]), now: 0, session: s)), .topicAliasInvalid)
    }

    func testReceiveMaximumAndAwaitingRel() {
        var m = connected(.v5) { $0.receiveMaximum = 2 }
        let full = FakeSession(awaiting: [1, 2])
        XCTAssertEqual(disconnectCode(m.received(publish("t", qos: .exactlyOnce, id: 3), now: 0, session: full)),
                       .receiveMaximumExceeded)
        var m2 = connected(.v5) { $0.receiveMaximum = 2 }
        guard case .duplicate = m2.received(publish("t", qos: .exactlyOnce, id: 2), now: 0, session: full) else {
            return XCTFail("a resend of an id awaiting PUBREL is a duplicate")
        }
        var v3 = connected(.v3_1_1) { $0.maxAwaitingRel = 2 }
        guard case .acknowledge(_, .success) = v3.received(publish("t", qos: .exactlyOnce, id: 3), now: 0, session: full) else {
            return XCTFail("3.x: acknowledged and dropped beyond max_awaiting_rel")
        }
    }

    func testPublishLimits() {
        var qos = connected(.v5) { $0.maxQoS = 1 }
        XCTAssertEqual(disconnectCode(qos.received(publish("t", qos: .exactlyOnce, id: 1), now: 0, session: FakeSession())),
                       .qosNotSupported)
        var retain = connected(.v5) { $0.retainAvailable = false }
        let r = Packet.publish(PublishPacket(retain: true, topic: "t", payload: ByteBuffer()))
        XCTAssertEqual(disconnectCode(retain.received(r, now: 0, session: FakeSession())), .retainNotSupported)
        var subId = connected(.v5)
        XCTAssertEqual(disconnectCode(subId.received(publish("t", props: [.subscriptionIdentifier(3)]), now: 0, session: FakeSession())),
                       .protocolError)
        // Topic limits: packet scope for 5.0 QoS 1/2, connection scope otherwise.
        var levels = connected(.v5) { $0.maxTopicLevels = 2 }
        guard case .acknowledge(_, .topicNameInvalid) = levels.received(publish("a/b/c", qos: .atLeastOnce, id: 1), now: 0, session: FakeSession()) else {
            return XCTFail()
        }
        XCTAssertEqual(disconnectCode(levels.received(publish("a/b/c"), now: 0, session: FakeSession())), .topicNameInvalid)
        var v3 = connected(.v3_1_1) { $0.maxTopicLevels = 2 }
        XCTAssertEqual(v3.received(publish("a/b/c", qos: .atLeastOnce, id: 1), now: 0, session: FakeSession()), .close)
    }

    func testSysTopicsAreNotForClients() {
        var m = connected(.v5)
        guard case .acknowledge(_, .notAuthorized) = m.received(publish("$SYS/x", qos: .atLeastOnce, id: 1), now: 0, session: FakeSession()) else {
            return XCTFail()
        }
        var v3 = connected(.v3_1_1)
        guard case .acknowledge(_, .success) = v3.received(publish("$SYS/x", qos: .atLeastOnce, id: 1), now: 0, session: FakeSession()) else {
            return XCTFail()
        }
    }

    // MARK: Acknowledgements

    func testAcknowledgementsThatBreakTheFlow() {
        var m = connected(.v5)
        let s = FakeSession(fits: [1: .fits, 2: .breaksFlow])
        XCTAssertEqual(m.received(.puback(PubAckPacket(packetId: 1)), now: 0, session: s), .acknowledged(.puback, PubAckPacket(packetId: 1)))
        XCTAssertEqual(m.received(.pubrec(PubAckPacket(packetId: 9)), now: 0, session: s), .acknowledged(.pubrec, PubAckPacket(packetId: 9)))
        XCTAssertEqual(disconnectCode(m.received(.pubcomp(PubAckPacket(packetId: 2)), now: 0, session: s)), .protocolError)
        var v3 = connected(.v3_1_1)
        XCTAssertEqual(v3.received(.puback(PubAckPacket(packetId: 2)), now: 0, session: s), .close)
    }

    func testServerOnlyAndRepeatedPackets() {
        for p: Packet in [.connack(ConnAckPacket(sessionPresent: false, reasonCode: .success)), .pingresp,
                          .suback(SubAckPacket(packetId: 1, reasonCodes: [.success])), connect(),
                          .auth(AuthPacket(reasonCode: .success))] {
            var m = connected(.v5)
            XCTAssertEqual(disconnectCode(m.received(p, now: 0, session: NoSession())), .protocolError, "\(p.type)")
        }
        var m = connected(.v5)
        XCTAssertEqual(m.received(.pingreq, now: 0, session: NoSession()), .send(.pingresp))
    }

    // MARK: Errors

    func testViolationDependsOnVersionAndPhase() {
        var v5 = machine()
        XCTAssertEqual(v5.violation(.protocolError, "x"), .close, "nothing is said before CONNECT")
        _ = v5.received(connect(.v5, props: [.requestProblemInformation(0)]), now: 0, session: NoSession())
        XCTAssertEqual(v5.violation(.protocolError, "why"),
                       .disconnect(DisconnectPacket(reasonCode: .protocolError), why: "why"), "no reason string when not wanted")
        let wants = connected(.v5)
        XCTAssertEqual(wants.violation(.protocolError, "why"),
                       .disconnect(DisconnectPacket(reasonCode: .protocolError, properties: [.reasonString("why")]), why: "why"))
        let v3 = connected(.v3_1_1)
        XCTAssertEqual(v3.violation(.protocolError, "why"), .close)
    }

    func testDecodingFailures() {
        var m = machine()
        XCTAssertEqual(refusal(m.decodingFailed(ConnectDecodingError(version: .v5, underlying: .malformed("x")))), .malformedPacket)
        XCTAssertEqual(m.version, .v5)
        var v3 = machine()
        XCTAssertEqual(refusal(v3.decodingFailed(ConnectDecodingError(version: nil, underlying: .unsupportedProtocolVersion(9)))),
                       .unsupportedProtocolVersion)
        XCTAssertEqual(v3.version, .v3_1_1, "answered in the 3.1.1 format")
        var other = machine()
        XCTAssertEqual(other.decodingFailed(ConnectDecodingError(version: .v3_1_1, underlying: .malformed("x"))), .close)
        var later = connected(.v5)
        XCTAssertEqual(disconnectCode(later.decodingFailed(MQTTCodecError.packetTooLarge(size: 10, limit: 5))), .packetTooLarge)
        var later3 = connected(.v3_1_1)
        XCTAssertEqual(later3.decodingFailed(MQTTCodecError.malformed("x")), .close)
        var io = connected(.v5)
        XCTAssertEqual(io.decodingFailed(ChannelError.ioOnClosedChannel), .close)
    }

    func testTakeoverAndShutdown() {
        let v5 = connected(.v5)
        XCTAssertEqual(disconnectCode(v5.takenOver()), .sessionTakenOver)
        XCTAssertEqual(disconnectCode(v5.shuttingDown()), .serverShuttingDown)
        let v3 = connected(.v3_1_1)
        XCTAssertEqual(v3.takenOver(), .close)
    }

    // MARK: Outbound

    func testFittingUnderTheClientsMaximum() {
        let m = connected(.v5, props: [.maximumPacketSize(20)])
        let long = Packet.puback(PubAckPacket(packetId: 1, reasonCode: .notAuthorized, properties: [.reasonString(String(repeating: "r", count: 40))]))
        let fitted = m.fitting(long)
        XCTAssertEqual(fitted.packet, .puback(PubAckPacket(packetId: 1, reasonCode: .notAuthorized)))
        XCTAssertFalse(fitted.close)
        var tiny = machine()
        _ = tiny.received(connect(.v5, props: [.maximumPacketSize(2)]), now: 0, session: NoSession())
        let ack = tiny.attached(sessionPresent: false, now: 0)
        XCTAssertNil(tiny.fitting(ack).packet)
        XCTAssertTrue(tiny.fitting(ack).close)
    }

    func testOutboundAliases() {
        var m = connected(.v5, props: [.topicAliasMaximum(2)])
        XCTAssertEqual(m.outboundAlias(for: "a")?.alias, 1)
        XCTAssertEqual(m.outboundAlias(for: "a")?.isNew, false)
        XCTAssertEqual(m.outboundAlias(for: "b")?.alias, 2)
        XCTAssertNil(m.outboundAlias(for: "c"), "the client's maximum is reached")
        var none = connected(.v5)
        XCTAssertNil(none.outboundAlias(for: "a"))
    }

    /// A client that allows every alias (65,535) gets every one, and then none: the counter
    /// must not overflow after the last (it trapped, ending the broker, before).
    func testOutboundAliasesUpToTheProtocolsMaximum() {
        var m = connected(.v5, props: [.topicAliasMaximum(.max)])
        for i in 1...65_535 {
            guard let a = m.outboundAlias(for: "t/\(i)") else { return XCTFail("no alias for topic \(i)") }
            if a.alias != UInt16(i) || !a.isNew { return XCTFail("topic \(i) got \(a)") }
        }
        XCTAssertNil(m.outboundAlias(for: "t/65536"), "every alias is taken")
        XCTAssertNil(m.outboundAlias(for: "t/65537"))
        XCTAssertEqual(m.outboundAlias(for: "t/65535")?.alias, 65_535, "known topics keep theirs")
        XCTAssertEqual(m.outboundAlias(for: "t/1")?.isNew, false)
    }

    /// An alias stands for one topic's bytes: a canonically equal topic gets its own
    /// [MQTT-4.7.3-4] (the client would otherwise read the other topic's bytes).
    func testOutboundAliasesCompareBytes() {
        var m = connected(.v5, props: [.topicAliasMaximum(5)])
        XCTAssertEqual(m.outboundAlias(for: "caf\u{E9}")?.alias, 1)
        XCTAssertEqual(m.outboundAlias(for: "cafe\u{301}")?.alias, 2)
        XCTAssertEqual(m.outboundAlias(for: "cafe\u{301}")?.isNew, false)
    }

    // MARK: SUBSCRIBE

    private func verdict(_ m: ConnectionStateMachine, _ filter: String, qos: QoS = .exactlyOnce, noLocal: Bool = false,
                         allowed: Bool = true) -> ConnectionStateMachine.SubscriptionVerdict {
        let sub = TopicSubscription(filter: filter, qos: qos, noLocal: noLocal)
        return m.subscription(sub, parsed: ParsedFilter.parse(filter), allowed: allowed, identifier: nil)
    }

    func testSubscriptionRules() {
        let v5 = connected(.v5) { $0.maxQoS = 1; $0.maxTopicLevels = 3 }
        guard case .grant(let p, let o) = verdict(v5, "a/+/c") else { return XCTFail() }
        XCTAssertEqual(p.filter, "a/+/c")
        XCTAssertEqual(o.qos, .atLeastOnce, "capped by max_qos")
        guard case .refuse(.topicFilterInvalid, _) = verdict(v5, "a/#/c") else { return XCTFail("invalid filter") }
        guard case .refuse(.topicFilterInvalid, _) = verdict(v5, "a/b/c/d") else { return XCTFail("too many levels") }
        guard case .refuse(.notAuthorized, _) = verdict(v5, "a", allowed: false) else { return XCTFail() }
        guard case .violation(let a) = verdict(v5, "$share/g/t", noLocal: true) else { return XCTFail("No Local on shared") }
        XCTAssertEqual(disconnectCode(a), .protocolError)

        let v3 = connected(.v3_1_1)
        guard case .refuse(.unspecifiedError, _) = verdict(v3, "a", allowed: false) else { return XCTFail("3.x: 0x80") }
        guard case .grant = verdict(v3, "$share/g/t", noLocal: true) else { return XCTFail("3.x has no No Local") }

        let off = connected(.v5) { $0.wildcardSubscription = false; $0.sharedSubscription = false }
        guard case .refuse(.wildcardSubscriptionsNotSupported, _) = verdict(off, "a/#") else { return XCTFail() }
        guard case .refuse(.sharedSubscriptionsNotSupported, _) = verdict(off, "$share/g/t") else { return XCTFail() }
    }

    func testMaxSubscriptions() {
        let sub = TopicSubscription(filter: "a/b", qos: .atLeastOnce)
        let parsed = ParsedFilter.parse("a/b")
        let v5 = connected(.v5) { $0.maxSubscriptions = 2 }
        guard case .grant = v5.subscription(sub, parsed: parsed, allowed: true, identifier: nil, held: 1) else { return XCTFail("below the limit") }
        guard case .refuse(.quotaExceeded, _) = v5.subscription(sub, parsed: parsed, allowed: true, identifier: nil, held: 2) else {
            return XCTFail("at the limit: 0x97")
        }
        guard case .grant = v5.subscription(sub, parsed: parsed, allowed: true, identifier: nil, held: 2, replaces: true) else {
            return XCTFail("a repeated filter replaces the old one")
        }
        let v3 = connected(.v3_1_1) { $0.maxSubscriptions = 1 }
        guard case .refuse(.unspecifiedError, _) = v3.subscription(sub, parsed: parsed, allowed: true, identifier: nil, held: 1) else {
            return XCTFail("3.x: 0x80")
        }
        let unlimited = connected(.v5)
        guard case .grant = unlimited.subscription(sub, parsed: parsed, allowed: true, identifier: nil, held: 1_000_000) else {
            return XCTFail("0: no limit")
        }
    }

    // MARK: Identity from a client certificate

    func testCertificateIdentityReplacesClientIdAndUsername() {
        var m = machine()
        guard case .authenticate = m.received(connect(.v5, id: "sent-id", user: "sent-user"), now: 0, session: NoSession()) else {
            return XCTFail("CONNECT not accepted")
        }
        m.useIdentity(clientId: "CN=dev-1,O=Acme", username: "dev-1")
        XCTAssertEqual(m.connectRequest?.clientId, "CN=dev-1,O=Acme")
        XCTAssertEqual(m.connectRequest?.username, "dev-1")
        XCTAssertEqual(m.connectRequest?.assigned, true, "a 5.0 client learns its new id from CONNACK")
        guard case .connack(let ack) = m.attached(sessionPresent: false, now: 0) else { return XCTFail() }
        XCTAssertTrue(ack.properties.items.contains(.assignedClientIdentifier("CN=dev-1,O=Acme")))
    }

    func testCertificateIdentityWithoutValuesKeepsWhatTheClientSent() {
        var m = machine()
        _ = m.received(connect(.v5, id: "sent-id", user: "sent-user"), now: 0, session: NoSession())
        m.useIdentity(clientId: nil, username: nil)
        XCTAssertEqual(m.connectRequest?.clientId, "sent-id")
        XCTAssertEqual(m.connectRequest?.username, "sent-user")
        XCTAssertEqual(m.connectRequest?.assigned, false)
    }
}
