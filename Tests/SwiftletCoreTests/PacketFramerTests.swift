import MQTTCodec
import NIOCore
import XCTest
@testable import SwiftletCore

/// The framer yields the same packets however the stream is cut into reads, and copies only
/// a packet that straddles two reads.
final class PacketFramerTests: XCTestCase {
    private func stream() -> (ByteBuffer, [Packet]) {
        var packets: [Packet] = [.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "f"))]
        for (i, size) in [0, 1, 100, 127, 128, 300, 16_383, 16_384, 70_000, 5].enumerated() {
            packets.append(.publish(PublishPacket(qos: i % 2 == 0 ? .atMostOnce : .atLeastOnce, topic: "t/\(i % 3)",
                                                  packetId: i % 2 == 0 ? nil : UInt16(i + 1),
                                                  payload: ByteBuffer(repeating: UInt8(i), count: size))))
            packets.append(.pingreq)
        }
        var all = ByteBuffer()
        for p in packets { var b = p.encoded(version: .v3_1_1); all.writeBuffer(&b) }
        return (all, packets)
    }

    private func framed(_ all: ByteBuffer, cuts: [Int]) throws -> [Packet] {
        var framer = PacketFramer(MQTTPacketDecoder(maxPacketSize: 1 << 20))
        var out: [Packet] = []
        var rest = all
        var i = 0
        while rest.readableBytes > 0 {
            let n = min(cuts[i % cuts.count], rest.readableBytes)
            i += 1
            try framer.process(rest.readSlice(length: n)!) { out.append($0) }
        }
        XCTAssertEqual(framer.pendingBytes, 0)
        return out
    }

    func testSamePacketsForEveryCut() throws {
        let (all, packets) = stream()
        for cuts in [[all.readableBytes], [1], [2], [3], [5], [7, 1, 4096], [65_536], [16_000, 3, 1, 2], [1000, 70_001]] {
            XCTAssertEqual(try framed(all, cuts: cuts), packets, "cut into reads of \(cuts)")
        }
    }

    func testPacketOverTheMaximumIsRefusedAtItsHeader() throws {
        var framer = PacketFramer(MQTTPacketDecoder(maxPacketSize: 100))
        var b = Packet.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "f")).encoded(version: .v3_1_1)
        try framer.process(b.readSlice(length: b.readableBytes)!) { _ in }
        // A PUBLISH announcing 1,000 bytes: refused before its body arrives.
        XCTAssertThrowsError(try framer.process(ByteBuffer(bytes: [0x30, 0xE8, 0x07])) { _ in })
    }

    func testStreamMustStartWithConnect() {
        var framer = PacketFramer(MQTTPacketDecoder(maxPacketSize: 1 << 20))
        XCTAssertThrowsError(try framer.process(ByteBuffer(bytes: [0xC0])) { _ in })
    }
}
