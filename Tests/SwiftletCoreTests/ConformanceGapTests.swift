import SwiftletConfig
import SwiftletRouting
import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

/// The conformance gaps of issue 10, through the connection as a client sees it.
final class ConformanceGapTests: XCTestCase {
    // MARK: QoS flow violations

    /// A subscriber at `qos` that has just received one message; returns it and its packet id.
    private func delivered(_ h: Harness, _ version: ProtocolVersion, qos: QoS) throws -> (TestClient, UInt16) {
        let sub = try h.client(version)
        try sub.connect("sub")
        try sub.subscribe("t", qos: qos)
        let pub = try h.client(.v5)
        try pub.connect("pub")
        try pub.publish("t", "m", qos: qos)
        let id = try XCTUnwrap(sub.publishes().first?.packetId)
        return (sub, id)
    }

    func testWrongAcknowledgementBreaksTheFlow() throws {
        let cases: [(QoS, (UInt16) -> Packet)] = [
            (.atLeastOnce, { .pubrec(PubAckPacket(packetId: $0)) }),
            (.atLeastOnce, { .pubcomp(PubAckPacket(packetId: $0)) }),
            (.exactlyOnce, { .puback(PubAckPacket(packetId: $0)) }),
            // PUBCOMP before PUBREC.
            (.exactlyOnce, { .pubcomp(PubAckPacket(packetId: $0)) }),
        ]
        for (qos, ack) in cases {
            for version in [ProtocolVersion.v3_1_1, .v5] {
                let h = makeHarness()
                let (sub, id) = try delivered(h, version, qos: qos)
                try sub.send(ack(id))
                let out = try sub.packets()
                XCTAssertFalse(out.contains { if case .pubrel = $0 { return true }; return false }, "\(version) \(qos)")
                if version == .v5 {
                    XCTAssertEqual(disconnectReason(out), .protocolError, "\(qos) \(ack(id).type)")
                } else {
                    XCTAssertEqual(out, [], "3.x closes without a word")
                }
                XCTAssertFalse(sub.isActive, "\(version) \(qos) \(ack(id).type)")
            }
        }
    }

    func testRightAcknowledgementsStillWork() throws {
        let h = makeHarness()
        let (sub, id) = try delivered(h, .v5, qos: .exactlyOnce)
        try sub.send(.pubrec(PubAckPacket(packetId: id)))
        XCTAssertEqual(try sub.packets(), [.pubrel(PubAckPacket(packetId: id))])
        // A repeated PUBREC is answered with PUBREL again.
        try sub.send(.pubrec(PubAckPacket(packetId: id)))
        XCTAssertEqual(try sub.packets(), [.pubrel(PubAckPacket(packetId: id))])
        try sub.send(.pubcomp(PubAckPacket(packetId: id)))
        XCTAssertEqual(try sub.packets(), [])
        XCTAssertTrue(sub.isActive)
        // Unknown ids stay harmless: PUBACK/PUBCOMP ignored, PUBREC answered with 0x92.
        try sub.send(.puback(PubAckPacket(packetId: 999)))
        try sub.send(.pubcomp(PubAckPacket(packetId: 999)))
        try sub.send(.pubrec(PubAckPacket(packetId: 999)))
        XCTAssertEqual(try sub.packets(), [.pubrel(PubAckPacket(packetId: 999, reasonCode: .packetIdentifierNotFound))])
        XCTAssertTrue(sub.isActive)
    }

    func testOutboundStateFit() {
        var o = OutboundState(window: 10, maxQueue: 10, queueQoS0: false)
        let h = makeHarness()
        let s = h.session("x")
        let m = Message(topic: "t", payload: payload("m"), qos: .exactlyOnce, retain: false, properties: Properties(),
                        expiryInterval: nil, origin: "o", v5Wire: true, now: .now(), allocator: ByteBufferAllocator())
        guard case .send(_, let id1?) = o.enqueue(Delivery(session: s, message: m, qos: .atLeastOnce, retainFlag: false, subscriptionIds: []), online: true, writable: true, now: .now()),
              case .send(_, let id2?) = o.enqueue(Delivery(session: s, message: m, qos: .exactlyOnce, retainFlag: false, subscriptionIds: []), online: true, writable: true, now: .now())
        else { return XCTFail("not sent") }
        XCTAssertEqual(o.fit(.puback, id1), .fits)
        XCTAssertEqual(o.fit(.pubrec, id1), .breaksFlow)
        XCTAssertEqual(o.fit(.pubcomp, id1), .breaksFlow)
        XCTAssertEqual(o.fit(.puback, id2), .breaksFlow)
        XCTAssertEqual(o.fit(.pubcomp, id2), .breaksFlow)
        XCTAssertEqual(o.fit(.pubrec, id2), .fits)
        XCTAssertTrue(o.received(id2, now: .now()))
        XCTAssertEqual(o.fit(.pubcomp, id2), .fits)
        XCTAssertEqual(o.fit(.pubrec, id2), .fits)
        XCTAssertEqual(o.fit(.puback, 4242), .unknown)
    }

    // MARK: Zero-length topic filters

    private func raw(_ c: TestClient, _ bytes: [UInt8]) throws {
        try c.sendBytes(ByteBuffer(bytes: bytes))
    }

    func testZeroLengthFilterClosesV311AndIsMalformedIn5() throws {
        let subscribe311: [UInt8] = [0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]
        let unsubscribe311: [UInt8] = [0xA2, 0x04, 0x00, 0x01, 0x00, 0x00]
        for bytes in [subscribe311, unsubscribe311] {
            let h = makeHarness()
            let c = try h.client(.v3_1_1)
            try c.connect("c")
            try raw(c, bytes)
            XCTAssertEqual(try c.packets(), [], "no SUBACK/UNSUBACK")
            XCTAssertFalse(c.isActive)
        }
        let subscribe5: [UInt8] = [0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
        let unsubscribe5: [UInt8] = [0xA2, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]
        for bytes in [subscribe5, unsubscribe5] {
            let h = makeHarness()
            let c = try h.client(.v5)
            try c.connect("c")
            try raw(c, bytes)
            XCTAssertEqual(disconnectReason(try c.packets()), .malformedPacket)
            XCTAssertFalse(c.isActive)
        }
    }

    // MARK: Maximum Packet Size

    func testCONNACKOverTheClientsMaximumIsNotSentAndTheConnectionCloses() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.send(.connect(ConnectPacket(protocolVersion: .v5, cleanStart: true, keepAlive: 0,
                                          properties: [.maximumPacketSize(2)], clientId: "tiny")))
        XCTAssertEqual(try c.receivedBytes(), [])
        XCTAssertFalse(c.isActive)
    }

    func testReasonStringIsLeftOutToFitTheClientsMaximum() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect("small", properties: [.maximumPacketSize(20)]))
        XCTAssertEqual(ack.reasonCode, .success)
        // A second CONNECT: the DISCONNECT's reason string "second CONNECT" would make it 21
        // bytes; without it, it fits (CONNACK already read by connect).
        try c.send(.connect(ConnectPacket(protocolVersion: .v5, cleanStart: true, keepAlive: 0, clientId: "again")))
        let bytes = try c.receivedBytes()
        XCTAssertEqual(bytes.count, 3)
        XCTAssertEqual(bytes, [0xE0, 0x01, 0x82], "DISCONNECT 0x82 without properties")
        XCTAssertFalse(c.isActive)
    }

    // MARK: strict_utf8

    func testControlCharacterInClientIdIsRefusedAsMalformed() throws {
        let h = makeHarness()
        let c5 = try h.client(.v5)
        let ack = try c5.connect("dev\u{7}ice")
        XCTAssertEqual(ack?.reasonCode, .malformedPacket)
        XCTAssertFalse(c5.isActive)
        let c3 = try h.client(.v3_1_1)
        XCTAssertNil(try c3.connect("dev\u{85}ice"))
        XCTAssertFalse(c3.isActive)
    }

    func testControlCharacterInTopicDisconnectsWithMalformed() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("c")
        try c.publish("a/\u{1}b", "x")
        XCTAssertEqual(disconnectReason(try c.packets()), .malformedPacket)
        XCTAssertFalse(c.isActive)
    }

    func testStrictUTF8OffPassesControlCharacters() throws {
        let h = makeHarness { $0.mqtt.strictUTF8 = false }
        let sub = try h.client(.v5)
        try sub.connect("dev\u{7}ice")
        try sub.subscribe("a/\u{1}b")
        let pub = try h.client(.v3_1_1)
        try pub.connect("p")
        try pub.publish("a/\u{1}b", "x")
        XCTAssertEqual(try sub.publishes().map(\.topic), ["a/\u{1}b"])
        XCTAssertTrue(sub.isActive)
    }
}

/// A plugin declaration that made toml++ abort (Fuzz/fuzz-config) is a configuration error.
final class PluginSpecPreflightTests: XCTestCase {
    func testMalformedPluginDeclarationIsAnErrorNotAnAbort() {
        for text in ["[=]\n", "[sidecar]\ncommand = [ }\n", "[sidecar]\nx = 1978-05-27Tx:00\n"] {
            XCTAssertThrowsError(try PluginSpec.parse(name: "p", file: "p.toml", text: text)) { error in
                XCTAssertTrue(error is ConfigError, "\(error)")
            }
        }
    }
}
