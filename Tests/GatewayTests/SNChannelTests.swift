import GatewayKit
import GatewayMQTTSN
import MQTTCodec
import NIOCore
import XCTest

/// The MQTT-SN channel with a manual clock: CONNECT with the will exchange, REGISTER both
/// ways, the three topic id types, QoS 1/2 both ways, sleeping clients, retransmission,
/// keep-alive and the updated will.
final class SNChannelTests: XCTestCase {
    typealias A = SNChannel.Action
    let s = UInt64(1_000_000_000)

    private func config() -> SNChannelConfig {
        var c = SNChannelConfig()
        c.predefined = [7: "pre/defined"]
        c.retryIntervalMs = 1000
        c.maxRetries = 2
        return c
    }

    private func sent(_ a: [A]) -> [SNMessage] { a.compactMap { if case .send(let m) = $0 { return m } else { return nil } } }
    private func broker(_ a: [A]) -> [Packet] { a.compactMap { if case .toBroker(let p) = $0 { return p } else { return nil } } }

    private func connected(duration: UInt16 = 60) -> SNChannel {
        var c = SNChannel(config: config())
        let a = c.receive(.connect(flags: SNFlags(cleanSession: true), duration: duration, clientId: "dev"), now: 0)
        guard case .openSession(.connect(let p)) = a.first else {
            XCTFail("\(a)")
            return c
        }
        XCTAssertEqual(p.clientId, "dev")
        XCTAssertEqual(sent(c.brokerPackets([.connack(ConnAckPacket())], now: 0)), [.connack(.accepted)])
        return c
    }

    /// Subscribes to `filter` and returns the subscription identifier-free SUBACK exchange done.
    private func subscribe(_ c: inout SNChannel, _ topic: SNTopic, type: SNTopicIdType = .normal, qos: Int8 = 1) -> SNMessage? {
        let a = c.receive(.subscribe(flags: SNFlags(qos: qos, topicIdType: type), msgId: 3, topic: topic), now: 1)
        guard case .subscribe(let sub)? = broker(a).first else { return sent(a).first }
        return sent(c.brokerPackets([.suback(SubAckPacket(packetId: sub.packetId, reasonCodes: [ReasonCode(UInt8(max(qos, 0)))]))], now: 1)).first
    }

    func testWillExchangeBeforeTheSession() {
        var c = SNChannel(config: config())
        XCTAssertEqual(sent(c.receive(.connect(flags: SNFlags(will: true), duration: 10, clientId: "w"), now: 0)), [.willTopicRequest])
        XCTAssertEqual(sent(c.receive(.willTopic(flags: SNFlags(qos: 1, retain: true), topic: "wills/w"), now: 0)), [.willMessageRequest])
        let a = c.receive(.willMessage(Array("bye".utf8)), now: 0)
        guard case .openSession(.connect(let p)) = a.first else { return XCTFail("\(a)") }
        XCTAssertEqual(p.will?.topic, "wills/w")
        XCTAssertEqual(p.will?.payload, ByteBuffer(string: "bye"))
        XCTAssertEqual(p.will?.qos, .atLeastOnce)
        XCTAssertEqual(p.will?.retain, true)
    }

    func testRefusedConnect() {
        var c = SNChannel(config: config())
        _ = c.receive(.connect(flags: SNFlags(), duration: 10, clientId: "x"), now: 0)
        let a = c.brokerPackets([.connack(ConnAckPacket(reasonCode: .notAuthorized))], now: 0)
        XCTAssertEqual(sent(a), [.connack(.notSupported)])
        XCTAssertEqual(a.last, .forget("CONNECT refused by the broker"))
    }

    func testRegisterAndPublishQoS1WaitsForTheBroker() {
        var c = connected()
        guard case .regack(let id, 5, .accepted) = sent(c.receive(.register(topicId: 0, msgId: 5, topicName: "a/b"), now: 1)).first else {
            return XCTFail()
        }
        let a = c.receive(.publish(flags: SNFlags(qos: 1), topicId: id, msgId: 6, data: ByteBuffer(string: "v")), now: 1)
        XCTAssertTrue(sent(a).isEmpty, "PUBACK only once the broker has it")
        guard case .publish(let p)? = broker(a).first else { return XCTFail() }
        XCTAssertEqual(p.topic, "a/b")
        let ack = c.brokerPackets([.puback(PubAckPacket(packetId: p.packetId!, reasonCode: .notAuthorized))], now: 2)
        XCTAssertEqual(sent(ack), [.puback(topicId: id, msgId: 6, .notSupported)], "ACL refusal")
    }

    func testUnknownTopicIdIsAnswered() {
        var c = connected()
        XCTAssertEqual(sent(c.receive(.publish(flags: SNFlags(), topicId: 99, msgId: 1, data: ByteBuffer()), now: 1)),
                       [.puback(topicId: 99, msgId: 1, .invalidTopicId)])
    }

    func testPredefinedAndShortTopics() {
        var c = connected()
        let pre = c.receive(.publish(flags: SNFlags(topicIdType: .predefined), topicId: 7, msgId: 0, data: ByteBuffer()), now: 1)
        guard case .publish(let p)? = broker(pre).first else { return XCTFail() }
        XCTAssertEqual(p.topic, "pre/defined")
        let short = c.receive(.publish(flags: SNFlags(topicIdType: .short), topicId: UInt16(0x6162), msgId: 0, data: ByteBuffer()), now: 1)
        guard case .publish(let q)? = broker(short).first else { return XCTFail() }
        XCTAssertEqual(q.topic, "ab")
        XCTAssertEqual(subscribe(&c, .id(7), type: .predefined), .suback(flags: SNFlags(qos: 1, topicIdType: .predefined), topicId: 7, msgId: 3, .accepted))
        XCTAssertEqual(subscribe(&c, .id(8), type: .predefined), .suback(flags: SNFlags(qos: 1, topicIdType: .predefined), topicId: 0, msgId: 3, .invalidTopicId))
    }

    func testDeliveryRegistersTheTopicFirstAndRetransmits() {
        var c = connected()
        XCTAssertEqual(subscribe(&c, .name("t/#")), .suback(flags: SNFlags(qos: 1), topicId: 0, msgId: 3, .accepted))
        let m = PublishPacket(qos: .atLeastOnce, topic: "t/long", packetId: 11, payload: ByteBuffer(string: "hello"))
        let a = c.brokerPackets([.publish(m)], now: 2 * s)
        guard case .register(let id, let regMsg, "t/long")? = sent(a).first else { return XCTFail("\(a)") }
        // No REGACK: the REGISTER is sent again after the retry interval.
        XCTAssertEqual(sent(c.tick(now: 3 * s + 1)).first, .register(topicId: id, msgId: regMsg, topicName: "t/long"))
        let b = c.receive(.regack(topicId: id, msgId: regMsg, .accepted), now: 3 * s + 2)
        guard case .publish(let f, id, let pubMsg, let data)? = sent(b).first else { return XCTFail("\(b)") }
        XCTAssertEqual(f.qos, 1)
        XCTAssertEqual(data, ByteBuffer(string: "hello"))
        XCTAssertTrue(broker(b).isEmpty, "the broker's PUBACK waits for the client's")
        let dup = sent(c.tick(now: 5 * s))
        guard case .publish(let df, _, pubMsg, _)? = dup.first else { return XCTFail("\(dup)") }
        XCTAssertTrue(df.dup)
        let done = c.receive(.puback(topicId: id, msgId: pubMsg, .accepted), now: 5 * s)
        XCTAssertEqual(broker(done), [.puback(PubAckPacket(packetId: 11))])
    }

    func testTooManyRetransmissionsLoseTheClient() {
        var c = connected(duration: 0)
        _ = subscribe(&c, .name("ab"), type: .short)
        _ = c.brokerPackets([.publish(PublishPacket(qos: .atLeastOnce, topic: "ab", packetId: 1, payload: ByteBuffer()))], now: 0)
        var last: [A] = []
        for i in 1...4 { last += c.tick(now: UInt64(i) * 2 * s) }
        XCTAssertEqual(sent(last).count, 2, "two retransmissions")
        XCTAssertEqual(last.last, .forget("no acknowledgement after 2 retransmissions"))
        XCTAssertTrue(last.contains(.closeSession("no acknowledgement after 2 retransmissions")))
        XCTAssertFalse(broker(last).contains(.disconnect(DisconnectPacket())), "no DISCONNECT: the broker publishes the will")
    }

    func testQoS2FromTheClient() {
        var c = connected()
        let a = c.receive(.publish(flags: SNFlags(qos: 2, topicIdType: .short), topicId: 0x6162, msgId: 4, data: ByteBuffer()), now: 1)
        XCTAssertEqual(sent(a), [.pubrec(msgId: 4)])
        XCTAssertEqual(broker(a).count, 1)
        let again = c.receive(.publish(flags: SNFlags(dup: true, qos: 2, topicIdType: .short), topicId: 0x6162, msgId: 4, data: ByteBuffer()), now: 1)
        XCTAssertEqual(sent(again), [.pubrec(msgId: 4)])
        XCTAssertTrue(broker(again).isEmpty, "a duplicate is not published twice")
        XCTAssertEqual(sent(c.receive(.pubrel(msgId: 4), now: 2)), [.pubcomp(msgId: 4)])
    }

    func testSleepingClientGetsBufferedMessagesOnPing() {
        var c = connected()
        _ = subscribe(&c, .name("zz"), type: .short, qos: 0)
        XCTAssertEqual(sent(c.receive(.disconnect(duration: 60), now: s)), [.disconnect(duration: nil)])
        XCTAssertEqual(c.phase, .asleep)
        for i in 0..<3 {
            XCTAssertTrue(sent(c.brokerPackets([.publish(PublishPacket(topic: "zz", payload: ByteBuffer(string: "\(i)")))], now: 2 * s)).isEmpty)
        }
        let wake = sent(c.receive(.pingreq(clientId: "dev"), now: 10 * s))
        XCTAssertEqual(wake.count, 4)
        XCTAssertEqual(wake.last, .pingresp)
        XCTAssertEqual(c.phase, .asleep)
        // Asleep longer than 1.5 times the duration: lost.
        XCTAssertEqual(c.tick(now: 101 * s).last, .forget("sleep duration exceeded"))
    }

    func testSleepBufferIsBounded() {
        var cfg = config()
        cfg.maxQueued = 2
        var c = SNChannel(config: cfg)
        _ = c.receive(.connect(flags: SNFlags(), duration: 0, clientId: "d"), now: 0)
        _ = c.brokerPackets([.connack(ConnAckPacket())], now: 0)
        _ = c.receive(.disconnect(duration: 100), now: 0)
        for _ in 0..<5 { _ = c.brokerPackets([.publish(PublishPacket(topic: "zz", payload: ByteBuffer()))], now: 1) }
        XCTAssertEqual(c.dropped, 3)
    }

    func testKeepAliveTimeout() {
        var c = connected(duration: 10)
        XCTAssertTrue(c.tick(now: 14 * s).isEmpty)
        XCTAssertEqual(c.tick(now: 15 * s).last, .forget("keep alive timeout"))
    }

    func testUpdatedWillIsPublishedByTheGateway() {
        var c = connected(duration: 10)
        XCTAssertEqual(sent(c.receive(.willTopicUpdate(flags: SNFlags(qos: 0, retain: false), topic: "new/will"), now: 1)),
                       [.willTopicResponse(.accepted)])
        XCTAssertEqual(sent(c.receive(.willMessageUpdate(Array("updated".utf8)), now: 1)), [.willMessageResponse(.accepted)])
        let a = c.tick(now: 20 * s)
        guard case .publish(let p)? = broker(a).first else { return XCTFail("\(a)") }
        XCTAssertEqual(p.topic, "new/will")
        XCTAssertEqual(p.payload, ByteBuffer(string: "updated"))
        XCTAssertEqual(broker(a).last, .disconnect(DisconnectPacket()), "the broker's stale will is not published")
    }

    func testMessagesBeforeConnectAreAnsweredDisconnect() {
        var c = SNChannel(config: config())
        XCTAssertEqual(sent(c.receive(.register(topicId: 0, msgId: 1, topicName: "a"), now: 0)), [.disconnect(duration: nil)])
    }
}
