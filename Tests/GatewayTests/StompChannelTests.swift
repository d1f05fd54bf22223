import GatewayKit
import GatewaySTOMP
import MQTTCodec
import NIOCore
import XCTest

/// The STOMP channel state machine with a manual clock: CONNECT and version negotiation,
/// SEND/SUBSCRIBE/ACK/transactions translated to MQTT, MESSAGE delivery, receipts and errors.
final class StompChannelTests: XCTestCase {
    typealias A = StompChannel.Action

    private func frame(_ command: String, _ headers: [(String, String)] = [], body: String = "") -> StompInbound {
        .frame(StompFrame(command, headers, body: ByteBuffer(string: body)))
    }

    private func sent(_ actions: [A]) -> [StompFrame] {
        actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
    }

    private func toBroker(_ actions: [A]) -> [Packet] {
        actions.compactMap { if case .toBroker(let p) = $0 { return p } else { return nil } }
    }

    /// A channel past CONNECTED at `version`.
    private func connected(_ version: String = "1.2", heartBeat: String? = nil,
                           config: StompChannelConfig = StompChannelConfig()) -> StompChannel {
        var c = StompChannel(config: config, clientId: "stomp-1")
        var headers = [("accept-version", version), ("login", "u"), ("passcode", "p")]
        if let heartBeat { headers.append(("heart-beat", heartBeat)) }
        let a = c.receive(frame("CONNECT", headers), now: 0)
        guard case .openSession(.connect(let p)) = a.first else {
            XCTFail("\(a)")
            return c
        }
        XCTAssertEqual(p.username, "u")
        let b = c.brokerPackets([.connack(ConnAckPacket())], now: 0)
        XCTAssertEqual(sent(b).first?.command, "CONNECTED")
        return c
    }

    func testNoFrameBeforeConnect() {
        var c = StompChannel(config: StompChannelConfig(), clientId: "x")
        let a = c.receive(frame("SEND", [("destination", "a")], body: "x"), now: 0)
        XCTAssertEqual(sent(a).first?.command, "ERROR")
        XCTAssertEqual(sent(a).first?["message"], "no frame is processed before CONNECT")
        XCTAssertEqual(a.last, .close("no frame is processed before CONNECT"))
        XCTAssertTrue(toBroker(a).isEmpty)
    }

    func testVersionNegotiation() {
        var c = StompChannel(config: StompChannelConfig(), clientId: "x")
        _ = c.receive(frame("CONNECT", [("accept-version", "1.0,1.1")]), now: 0)
        XCTAssertEqual(c.version, .v1_1)
        var none = StompChannel(config: StompChannelConfig(), clientId: "x")
        let a = none.receive(frame("CONNECT", [("accept-version", "2.0")]), now: 0)
        XCTAssertEqual(sent(a).first?["version"], "1.0,1.1,1.2")
        var old = StompChannel(config: StompChannelConfig(), clientId: "x")
        _ = old.receive(frame("CONNECT"), now: 0)
        XCTAssertEqual(old.version, .v1_0, "no accept-version: 1.0")
    }

    func testAnonymousConnectUsesTheDefaultUserOrIsRefused() {
        var c = StompChannel(config: StompChannelConfig(), clientId: "x")
        guard case .openSession(.connect(let p)) = c.receive(frame("STOMP", [("accept-version", "1.2")]), now: 0).first else {
            return XCTFail()
        }
        XCTAssertEqual(p.username, "guest")
        XCTAssertEqual(p.password, ByteBuffer(string: "guest"))
        var config = StompChannelConfig()
        config.allowAnonymous = false
        var strict = StompChannel(config: config, clientId: "x")
        XCTAssertEqual(sent(strict.receive(frame("CONNECT"), now: 0)).first?["message"], "login required")
    }

    func testRefusedLoginIsAnError() {
        var c = StompChannel(config: StompChannelConfig(), clientId: "x")
        _ = c.receive(frame("CONNECT", [("login", "u"), ("passcode", "bad")]), now: 0)
        let a = c.brokerPackets([.connack(ConnAckPacket(reasonCode: .badUserNameOrPassword))], now: 0)
        XCTAssertEqual(sent(a).first?["message"], "login refused")
        XCTAssertEqual(String(buffer: sent(a).first!.body), "bad user name or password\n")
        XCTAssertEqual(c.phase, .closed)
    }

    func testSendMapsDestinationsAndQoS() {
        var c = connected()
        let a = c.receive(frame("SEND", [("destination", "/topic/a/b")], body: "x"), now: 1)
        guard case .publish(let p) = toBroker(a).first else { return XCTFail() }
        XCTAssertEqual(p.topic, "a/b")
        XCTAssertEqual(p.qos, .atMostOnce)
        let r = c.receive(frame("SEND", [("destination", "a/b"), ("receipt", "r1")], body: "y"), now: 1)
        guard case .publish(let q) = toBroker(r).first else { return XCTFail() }
        XCTAssertEqual(q.topic, "a/b")
        XCTAssertEqual(q.qos, .atLeastOnce, "a receipt asks for QoS 1")
        let ack = c.brokerPackets([.puback(PubAckPacket(packetId: q.packetId!))], now: 2)
        XCTAssertEqual(sent(ack).first?["receipt-id"], "r1")
        let denied = c.receive(frame("SEND", [("destination", "a/c"), ("receipt", "r2")]), now: 3)
        guard case .publish(let d) = toBroker(denied).first else { return XCTFail() }
        let err = c.brokerPackets([.puback(PubAckPacket(packetId: d.packetId!, reasonCode: .notAuthorized))], now: 3)
        XCTAssertEqual(sent(err).first?.command, "ERROR")
        XCTAssertEqual(sent(err).first?["receipt-id"], "r2")
    }

    func testSendToAWildcardIsRefused() {
        var c = connected()
        let a = c.receive(frame("SEND", [("destination", "/topic/a/#")]), now: 1)
        XCTAssertEqual(sent(a).first?.command, "ERROR")
        XCTAssertTrue(toBroker(a).isEmpty)
    }

    func testMessageCarriesTheDestinationAsTheSubscriberWroteIt() {
        var c = connected()
        let s1 = c.receive(frame("SUBSCRIBE", [("destination", "/topic/a/+"), ("id", "p")]), now: 1)
        let s2 = c.receive(frame("SUBSCRIBE", [("destination", "a/#"), ("id", "b"), ("receipt", "rb")]), now: 1)
        guard case .subscribe(let sub1) = toBroker(s1).first, case .subscribe(let sub2) = toBroker(s2).first else {
            return XCTFail()
        }
        XCTAssertEqual(sub1.subscriptions.first?.filter, "a/+")
        XCTAssertEqual(sub2.subscriptions.first?.filter, "a/#")
        let acks = c.brokerPackets([.suback(SubAckPacket(packetId: sub1.packetId, reasonCodes: [.grantedQoS1])),
                                    .suback(SubAckPacket(packetId: sub2.packetId, reasonCodes: [.grantedQoS1]))], now: 2)
        XCTAssertEqual(sent(acks).map { $0["receipt-id"] }, ["rb"])
        let ids = sub1.properties.subscriptionIdentifiers + sub2.properties.subscriptionIdentifiers
        let msg = PublishPacket(qos: .atLeastOnce, topic: "a/x", packetId: 9, properties: Properties(ids.map { .subscriptionIdentifier($0) }),
                                payload: ByteBuffer(string: "hi"))
        let d = c.brokerPackets([.publish(msg)], now: 3)
        let dests = Set(sent(d).map { $0["destination"]! })
        XCTAssertEqual(dests, ["/topic/a/x", "a/x"])
        XCTAssertEqual(toBroker(d), [.puback(PubAckPacket(packetId: 9))], "auto ack: acknowledged at once")
    }

    func testClientAckIsCumulativeAndIndividualIsNot() {
        var c = connected()
        let s = c.receive(frame("SUBSCRIBE", [("destination", "q"), ("id", "1"), ("ack", "client")]), now: 1)
        guard case .subscribe(let sub) = toBroker(s).first else { return XCTFail() }
        _ = c.brokerPackets([.suback(SubAckPacket(packetId: sub.packetId, reasonCodes: [.grantedQoS1]))], now: 1)
        let id = sub.properties.subscriptionIdentifiers
        var acks: [String] = []
        for pid in UInt16(1)...3 {
            let m = PublishPacket(qos: .atLeastOnce, topic: "q", packetId: pid, properties: Properties(id.map { .subscriptionIdentifier($0) }),
                                  payload: ByteBuffer())
            let d = c.brokerPackets([.publish(m)], now: 2)
            XCTAssertTrue(toBroker(d).isEmpty, "no PUBACK before the client's ACK")
            acks.append(sent(d)[0]["ack"]!)
        }
        let a = c.receive(frame("ACK", [("id", acks[1])]), now: 3)
        XCTAssertEqual(toBroker(a), [.puback(PubAckPacket(packetId: 1)), .puback(PubAckPacket(packetId: 2))])
        let again = c.receive(frame("ACK", [("id", acks[0])]), now: 3)
        XCTAssertTrue(toBroker(again).isEmpty, "already acknowledged: no-op")
        let bad = c.receive(frame("ACK", [("id", "999")]), now: 3)
        XCTAssertEqual(sent(bad).first?.command, "ERROR")
    }

    func testTransactionsHoldFramesUntilCommit() {
        var c = connected()
        XCTAssertTrue(c.receive(frame("BEGIN", [("transaction", "t")]), now: 1).isEmpty)
        XCTAssertTrue(c.receive(frame("SEND", [("destination", "a"), ("transaction", "t")], body: "1"), now: 1).isEmpty)
        XCTAssertTrue(c.receive(frame("SEND", [("destination", "b"), ("transaction", "t")], body: "2"), now: 1).isEmpty)
        let commit = c.receive(frame("COMMIT", [("transaction", "t"), ("receipt", "c")]), now: 2)
        let topics = toBroker(commit).compactMap { if case .publish(let p) = $0 { return p.topic } else { return nil } }
        XCTAssertEqual(topics, ["a", "b"])
        XCTAssertEqual(toBroker(commit).last, .pingreq, "the receipt follows the publishes")
        XCTAssertEqual(sent(c.brokerPackets([.pingresp], now: 3)).first?["receipt-id"], "c")
        XCTAssertTrue(c.receive(frame("BEGIN", [("transaction", "u")]), now: 4).isEmpty)
        _ = c.receive(frame("SEND", [("destination", "a"), ("transaction", "u")]), now: 4)
        XCTAssertTrue(toBroker(c.receive(frame("ABORT", [("transaction", "u")]), now: 4)).isEmpty)
        XCTAssertEqual(sent(c.receive(frame("COMMIT", [("transaction", "u")]), now: 5)).first?["message"], "no transaction u")
    }

    func testTransactionSizeIsBounded() {
        var config = StompChannelConfig()
        config.maxTransactionFrames = 3
        var c = connected(config: config)
        _ = c.receive(frame("BEGIN", [("transaction", "t")]), now: 1)
        _ = c.receive(frame("SEND", [("destination", "a"), ("transaction", "t")]), now: 1)
        _ = c.receive(frame("SEND", [("destination", "a"), ("transaction", "t")]), now: 1)
        let a = c.receive(frame("SEND", [("destination", "a"), ("transaction", "t")]), now: 1)
        XCTAssertEqual(sent(a).first?["message"], "transaction too large")
    }

    func testHeartBeatsBothWays() {
        var c = connected("1.2", heartBeat: "2000,3000")
        let s = UInt64(1_000_000)
        XCTAssertEqual(c.nextDeadline, 3000 * s)
        XCTAssertEqual(c.tick(now: 3000 * s), [.heartbeat])
        _ = c.receive(.heartbeat, now: 3500 * s)
        XCTAssertEqual(c.tick(now: 6000 * s), [.heartbeat])
        // Nothing from the client for twice its interval: ERROR and close.
        let dead = c.tick(now: 7600 * s)
        XCTAssertEqual(sent(dead).first?["message"], "heart-beat timeout")
    }

    func testSlowClientDropsQoS0AndHoldsQoS1() {
        var c = connected()
        let s = c.receive(frame("SUBSCRIBE", [("destination", "q"), ("id", "1")]), now: 1)
        guard case .subscribe(let sub) = toBroker(s).first else { return XCTFail() }
        _ = c.brokerPackets([.suback(SubAckPacket(packetId: sub.packetId, reasonCodes: [.grantedQoS1]))], now: 1)
        _ = c.writabilityChanged(false, now: 2)
        let q0 = PublishPacket(topic: "q", payload: ByteBuffer(string: "0"))
        let q1 = PublishPacket(qos: .atLeastOnce, topic: "q", packetId: 5, payload: ByteBuffer(string: "1"))
        XCTAssertTrue(c.brokerPackets([.publish(q0), .publish(q1)], now: 2).isEmpty)
        XCTAssertEqual(c.dropped, 1)
        let resumed = c.writabilityChanged(true, now: 3)
        XCTAssertEqual(sent(resumed).map { String(buffer: $0.body) }, ["1"])
        XCTAssertEqual(toBroker(resumed), [.puback(PubAckPacket(packetId: 5))])
    }

    func testDisconnectReceiptFollowsTheBroker() {
        var c = connected()
        let a = c.receive(frame("DISCONNECT", [("receipt", "bye")]), now: 1)
        XCTAssertEqual(toBroker(a), [.pingreq])
        XCTAssertTrue(c.receive(frame("SEND", [("destination", "a")]), now: 1).isEmpty, "nothing after DISCONNECT")
        let b = c.brokerPackets([.pingresp], now: 2)
        XCTAssertEqual(sent(b).first?["receipt-id"], "bye")
        XCTAssertEqual(toBroker(b), [.disconnect(DisconnectPacket())])
        XCTAssertEqual(b.last, .close("DISCONNECT"))
    }

    func testBrokerDisconnectIsAnError() {
        var c = connected()
        let a = c.brokerPackets([.disconnect(DisconnectPacket(reasonCode: .sessionTakenOver))], now: 1)
        XCTAssertEqual(sent(a).first?["message"], "disconnected by the broker")
        XCTAssertEqual(c.phase, .closed)
    }

    func testDecoderErrorsBecomeAnErrorFrame() {
        var c = connected()
        let a = c.decodeFailed(.bodyTooLong(limit: 8192), now: 1)
        XCTAssertEqual(sent(a).first?["message"], "body too long (max_body_length = 8192)")
        XCTAssertEqual(a.last, .close("body too long (max_body_length = 8192)"))
    }
}
