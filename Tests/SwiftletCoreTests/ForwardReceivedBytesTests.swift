import SwiftletRouting
import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

/// A plain QoS 0 PUBLISH is forwarded as the bytes it arrived in when pinning them is cheap
/// (docs/decisions/0005-forward-received-bytes.md), and subscribers read the same packets
/// either way.
final class ForwardReceivedBytesTests: XCTestCase {
    private let now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    private func address(_ b: ByteBuffer) -> UnsafeRawPointer? { b.withUnsafeReadableBytes { $0.baseAddress } }

    /// `packet` encoded into storage of `capacity` bytes, read as the decoder would.
    private func received(_ packet: PublishPacket, capacity: Int, version: ProtocolVersion = .v3_1_1) -> PublishPacket {
        var storage = ByteBufferAllocator().buffer(capacity: capacity)
        Packet.publish(packet).encode(into: &storage, version: version)
        var d = MQTTDecoder(version: version)
        guard case .publish(let p)? = try? d.decode(buffer: &storage) else { fatalError("not decoded") }
        return p
    }

    private func message(_ p: PublishPacket, v5: Bool = false) -> Message {
        Message(topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, v5Wire: v5, now: now, received: p.received)
    }

    func testReceivedPacketIsTheWireWhenItFillsItsBuffer() {
        let p = received(PublishPacket(topic: "a/long/topic/name/over/15", payload: ByteBuffer(repeating: 7, count: 16_384)),
                         capacity: 20_000)
        let m = message(p)
        XCTAssertEqual(address(m.wire), address(p.received!), "the wire is the received bytes, not a copy")
        XCTAssertEqual(m.wire, Packet.publish(PublishPacket(topic: p.topic, payload: p.payload)).encoded(version: .v3_1_1))
        XCTAssertEqual(m.payload, p.payload)
    }

    func testSmallPacketInALargeBufferIsCopied() {
        let p = received(PublishPacket(topic: "t", payload: ByteBuffer(string: "small")), capacity: 65_536)
        let m = message(p)
        XCTAssertNotEqual(address(m.wire), address(p.received!), "a few bytes must not pin 64 KiB")
        XCTAssertEqual(m.wire, p.received!)
    }

    func testNonMinimalRemainingLengthIsReencoded() {
        // Remaining length 7 written in two bytes (0x87 0x00): accepted, but never forwarded so.
        var b = ByteBuffer(bytes: [0x30, 0x87, 0x00, 0x00, 0x01, 0x74, 0x61, 0x62, 0x63, 0x64])
        var d = MQTTDecoder(version: .v3_1_1)
        guard case .publish(let p)? = try? d.decode(buffer: &b) else { return XCTFail("not decoded") }
        let m = message(p)
        XCTAssertEqual(Array(m.wire.readableBytesView), [0x30, 0x07, 0x00, 0x01, 0x74, 0x61, 0x62, 0x63, 0x64])
    }

    func testExpiringMessageIsEncoded() {
        let p = received(PublishPacket(topic: "t", payload: ByteBuffer(string: "x")), capacity: 8, version: .v5)
        let m = Message(topic: p.topic, payload: p.payload, qos: .atMostOnce, retain: false, expiryInterval: 60,
                        v5Wire: true, now: now, received: p.received)
        XCTAssertNotEqual(m.wire, p.received!, "the wire carries the message expiry interval")
    }

    /// Through the broker: 3.1.1 and 5.0 publishers, plain and with properties, to 3.1.1 and
    /// 5.0 subscribers; each subscriber reads what it would read from a re-encoded message.
    func testSubscribersReadTheSamePackets() throws {
        let h = makeHarness()
        let sub3 = try h.client(.v3_1_1), sub5 = try h.client(.v5)
        try sub3.connect("s3")
        try sub5.connect("s5")
        try sub3.subscribe("f/#")
        try sub5.subscribe("f/#")
        let pub3 = try h.client(.v3_1_1), pub5 = try h.client(.v5)
        try pub3.connect("p3")
        try pub5.connect("p5")
        for round in 0..<2 {  // the second round repeats each topic (the decoder's shared String)
            try pub3.send(.publish(PublishPacket(topic: "f/three", payload: ByteBuffer(string: "a\(round)"))))
            try pub5.send(.publish(PublishPacket(topic: "f/five", payload: ByteBuffer(string: "b\(round)"))))
            try pub5.send(.publish(PublishPacket(topic: "f/five/props", properties: [.userProperty("k", "v")],
                                                 payload: ByteBuffer(string: "c\(round)"))))
            try pub3.send(.publish(PublishPacket(retain: true, topic: "f/retained", payload: ByteBuffer(string: "d\(round)"))))
        }
        let expect3 = (0..<2).flatMap { ["f/three a\($0)", "f/five b\($0)", "f/five/props c\($0)", "f/retained d\($0)"] }
        XCTAssertEqual(try sub3.publishes().map { "\($0.topic) \(String(buffer: $0.payload))" }, expect3)
        let got5 = try sub5.publishes()
        XCTAssertEqual(got5.map { "\($0.topic) \(String(buffer: $0.payload))" }, expect3)
        XCTAssertEqual(got5.map(\.retain), Array(repeating: false, count: 8), "retain as published is off")
        XCTAssertEqual(got5[2].properties, [.userProperty("k", "v")])
        XCTAssertEqual(got5[0].properties, [])
    }
}
