import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

final class ConnectTests: XCTestCase {
    func testV311ConnAckBytes() throws {
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "c1")))
        XCTAssertEqual(try c.receivedBytes(), [0x20, 0x02, 0x00, 0x00])
        XCTAssertTrue(c.isActive)
    }

    func testConnAckIsWrittenInTheTurnThatReadTheConnect() throws {
        // A new session is made on the connection's loop at once: CONNACK is out before the
        // loop runs any queued task (no extra trip through the task queue per CONNECT).
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.channel.writeInbound(Packet.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "c1")).encoded(version: .v3_1_1))
        let ack = try XCTUnwrap(c.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(Array(ack.readableBytesView), [0x20, 0x02, 0x00, 0x00])
        XCTAssertNotNil(h.broker.registry.get("c1"))
    }

    func testV311ConnAckSessionPresentBitOnResume() throws {
        let h = makeHarness()
        let c1 = try h.client(.v3_1_1)
        try c1.connect("c1", cleanStart: false)
        c1.drop()
        let c2 = try h.client(.v3_1_1)
        try c2.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, cleanStart: false, clientId: "c1")))
        XCTAssertEqual(try c2.receivedBytes(), [0x20, 0x02, 0x01, 0x00])
    }

    func testV5ConnAckAnnouncesMaximumPacketSizeAndTopicAliasMaximum() throws {
        let h = makeHarness {
            $0.mqtt.maxPacketSize = 4096
            $0.mqtt.maxTopicAlias = 16
        }
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect("c5"))
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertFalse(ack.sessionPresent)
        XCTAssertEqual(ack.properties.maximumPacketSize, 4096)
        XCTAssertEqual(ack.properties.topicAliasMaximum, 16)
        XCTAssertEqual(ack.properties.receiveMaximum, 32)
        XCTAssertNil(ack.properties.assignedClientIdentifier)
    }

    func testV5EmptyClientIdGetsAssignedClientIdentifier() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect(""))
        XCTAssertEqual(ack.reasonCode, .success)
        let assigned = try XCTUnwrap(ack.properties.assignedClientIdentifier)
        XCTAssertFalse(assigned.isEmpty)
        XCTAssertNotNil(h.broker.registry.get(assigned))
    }

    func testAssignedClientIdentifiersAreUnique() throws {
        let h = makeHarness()
        let a = try XCTUnwrap(try h.client(.v5).connect("")?.properties.assignedClientIdentifier)
        let b = try XCTUnwrap(try h.client(.v5).connect("")?.properties.assignedClientIdentifier)
        XCTAssertNotEqual(a, b)
    }

    func testV311EmptyClientIdWithCleanSessionIsAccepted() throws {
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, cleanStart: true, clientId: "")))
        XCTAssertEqual(try c.receivedBytes(), [0x20, 0x02, 0x00, 0x00])
    }

    func testV311EmptyClientIdWithoutCleanSessionIsRefusedWith0x02() throws {
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, cleanStart: false, clientId: "")))
        XCTAssertEqual(try c.receivedBytes(), [0x20, 0x02, 0x00, 0x02])
        XCTAssertFalse(c.isActive)
    }

    func testClientIdLongerThanLimitIsRefused() throws {
        let h = makeHarness { $0.mqtt.maxClientIdLength = 23 }
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect(String(repeating: "a", count: 24)))
        XCTAssertEqual(ack.reasonCode, .clientIdentifierNotValid)
        XCTAssertFalse(c.isActive)
    }

    func testAnonymousRefusedWhenNotAllowed() throws {
        let h = makeHarness { $0.mqtt.allowAnonymous = false }
        let v3 = try h.client(.v3_1_1)
        try v3.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "x")))
        XCTAssertEqual(try v3.receivedBytes(), [0x20, 0x02, 0x00, 0x05])
        XCTAssertFalse(v3.isActive)
        let v5 = try h.client(.v5)
        XCTAssertEqual(try v5.connect("y")?.reasonCode, .notAuthorized)
        XCTAssertFalse(v5.isActive)
    }

    func testFirstPacketNotConnectClosesWithoutOutput() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.send(.pingreq)
        XCTAssertEqual(try c.receivedBytes(), [])
        XCTAssertFalse(c.isActive)
    }

    func testFirstPacketPublishClosesWithoutOutput() throws {
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.publish("t", "x")
        XCTAssertEqual(try c.receivedBytes(), [])
        XCTAssertFalse(c.isActive)
    }

    func testSecondConnectIsAProtocolError() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        try c.connect("c")
        try c.send(.connect(ConnectPacket(protocolVersion: .v5, clientId: "c")))
        XCTAssertEqual(disconnectReason(try c.packets()), .protocolError)
        XCTAssertFalse(c.isActive)
    }

    func testSecondConnectClosesV311WithoutOutput() throws {
        let h = makeHarness()
        let c = try h.client(.v3_1_1)
        try c.connect("c")
        try c.send(.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "c")))
        XCTAssertEqual(try c.receivedBytes(), [])
        XCTAssertFalse(c.isActive)
    }

    func testNoConnectWithinIdleTimeoutCloses() throws {
        let h = makeHarness { $0.mqtt.idleTimeout = 5 }
        let c = try h.client(.v5)
        h.advance(seconds: 4)
        XCTAssertTrue(c.isActive)
        h.advance(seconds: 1)
        XCTAssertFalse(c.isActive)
    }

    func testTakeoverDisconnectsTheFirstConnectionWith0x8E() throws {
        let h = makeHarness()
        let first = try h.client(.v5)
        try first.connect("same")
        let second = try h.client(.v5)
        let ack = try XCTUnwrap(second.connect("same"))
        XCTAssertEqual(ack.reasonCode, .success)
        XCTAssertEqual(disconnectReason(try first.packets()), .sessionTakenOver)
        XCTAssertFalse(first.isActive)
        XCTAssertTrue(second.isActive)
    }

    func testTakeoverClosesAV311ConnectionWithoutOutput() throws {
        let h = makeHarness()
        let first = try h.client(.v3_1_1)
        try first.connect("same")
        let second = try h.client(.v3_1_1)
        try second.connect("same")
        XCTAssertEqual(try first.receivedBytes(), [])
        XCTAssertFalse(first.isActive)
        XCTAssertTrue(second.isActive)
    }

    func testTakeoverWithoutCleanStartResumesTheSession() throws {
        let h = makeHarness()
        let first = try h.client(.v5)
        try first.connect("same", cleanStart: true, properties: [.sessionExpiryInterval(60)])
        try first.subscribe("t", qos: .atLeastOnce)
        let second = try h.client(.v5)
        let ack = try XCTUnwrap(second.connect("same", cleanStart: false, properties: [.sessionExpiryInterval(60)]))
        XCTAssertTrue(ack.sessionPresent)
        let pub = try h.client(.v5)
        try pub.connect("pub")
        try pub.publish("t", "hello")
        XCTAssertEqual(try second.publishes().map(\.topic), ["t"])
    }

    /// A session that was to end with its connection (3.1.1 clean session, 5.0 expiry 0)
    /// ends on takeover too: a CONNECT asking to resume finds no session and its
    /// subscriptions are gone.
    func testTakeoverOfASessionThatEndsWithItsConnectionResumesNothing() throws {
        for version in [ProtocolVersion.v3_1_1, .v5] {
            let h = makeHarness()
            let first = try h.client(version)
            try first.connect("same", cleanStart: true)
            try first.subscribe("t", qos: .atLeastOnce)
            let second = try h.client(version)
            let props: Properties = version == .v5 ? [.sessionExpiryInterval(60)] : []
            let ack = try XCTUnwrap(second.connect("same", cleanStart: false, properties: props))
            XCTAssertFalse(ack.sessionPresent, "\(version)")
            XCTAssertFalse(first.isActive)
            let pub = try h.client(version)
            try pub.connect("pub")
            try pub.publish("t", "hello")
            XCTAssertEqual(try second.publishes().map(\.topic), [], "\(version): the old subscription ended with the session")
        }
    }

    func testResumeWithoutStoredSessionReportsNoSession() throws {
        let h = makeHarness()
        let c = try h.client(.v5)
        let ack = try XCTUnwrap(c.connect("new", cleanStart: false, properties: [.sessionExpiryInterval(60)]))
        XCTAssertFalse(ack.sessionPresent)
    }

    func testClientGoneBeforeConnAckStillEndsItsSession() throws {
        let h = makeHarness()
        let sub = try h.client(.v5)
        try sub.connect("watcher")
        try sub.subscribe("will/#")
        // A connection of the same client id: the new CONNECT takes its session over, a step
        // on that session's loop (a CONNECT with nothing to take over attaches at once).
        let old = try h.client(.v5)
        try old.connect("x")
        let c = try h.client(.v5)
        let will = Will(topic: "will/x", payload: payload("bye"), qos: .atMostOnce, retain: false)
        // CONNECT is read, then the connection drops before the session is attached.
        try c.channel.writeInbound(Packet.connect(ConnectPacket(protocolVersion: .v5, clientId: "x", will: will))
            .encoded(version: .v5))
        _ = try? c.channel.close().wait()
        h.run()
        XCTAssertEqual(try c.receivedBytes(), [])
        XCTAssertNil(h.broker.registry.get("x"))
        XCTAssertEqual(try sub.publishes().map(\.topic), ["will/x"])
    }
}
