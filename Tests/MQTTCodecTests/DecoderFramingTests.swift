import MQTTCodec
import NIOCore
import XCTest

/// Stream framing: the same packets must come out however the bytes are cut.
final class DecoderFramingTests: XCTestCase {
    /// A long mixed 5.0 session starting with CONNECT (so the decoder learns the version).
    static func mixedV5Session() -> [Packet] {
        var packets: [Packet] = [
            .connect(ConnectPacket(protocolVersion: .v5, cleanStart: false, keepAlive: 30,
                                   properties: [.sessionExpiryInterval(300), .receiveMaximum(50),
                                                .userProperty("client", "test")],
                                   clientId: "drip",
                                   will: Will(topic: "w/t", payload: buffer("gone"), qos: .exactlyOnce, retain: true,
                                              properties: [.willDelayInterval(2), .contentType("text/plain")]),
                                   username: "user", password: buffer([1, 2, 3]))),
            .subscribe(SubscribePacket(packetId: 1, properties: [.subscriptionIdentifier(7)], subscriptions: [
                TopicSubscription(filter: "a/#", qos: .exactlyOnce, noLocal: true, retainAsPublished: true,
                                  retainHandling: .sendIfNew),
                TopicSubscription(filter: "+/b", qos: .atMostOnce),
            ])),
            .pingreq,
        ]
        for i in 0..<40 {
            let qos = QoS(rawValue: UInt8(i % 3))!
            // Payload sizes cross the 1, 2 and 3 byte remaining length boundaries.
            let size = [0, 1, 100, 127, 128, 300, 16_383, 16_384, 20_000][i % 9]
            var payload = ByteBuffer()
            for j in 0..<size { payload.writeInteger(UInt8(truncatingIfNeeded: i &+ j)) }
            let id: UInt16? = qos == .atMostOnce ? nil : UInt16(i + 1)
            var props: Properties = i % 4 == 0 ? [] : [.messageExpiryInterval(UInt32(i)), .userProperty("i", "\(i)")]
            if i % 5 == 0 { props.items.append(.correlationData(buffer([UInt8(i)]))) }
            let topic = i % 7 == 6 ? "" : "sensor/\(i)/value"
            if topic.isEmpty { props.items.append(.topicAlias(UInt16(i))) }
            packets.append(.publish(PublishPacket(dup: qos != .atMostOnce && i % 2 == 0, qos: qos, retain: i % 3 == 1,
                                                  topic: topic, packetId: id, properties: props, payload: payload)))
            switch qos {
            case .atMostOnce: packets.append(.pingresp)
            case .atLeastOnce: packets.append(.puback(PubAckPacket(packetId: id!, reasonCode: i % 2 == 0 ? .success : .noMatchingSubscribers)))
            case .exactlyOnce:
                packets.append(.pubrec(PubAckPacket(packetId: id!)))
                packets.append(.pubrel(PubAckPacket(packetId: id!, properties: [.reasonString("rel")])))
                packets.append(.pubcomp(PubAckPacket(packetId: id!)))
            }
        }
        packets += [
            .connack(ConnAckPacket(sessionPresent: true, properties: [.topicAliasMaximum(10)])),
            .suback(SubAckPacket(packetId: 1, reasonCodes: [.grantedQoS2, .grantedQoS0])),
            .unsubscribe(UnsubscribePacket(packetId: 2, filters: ["a/#", "+/b"])),
            .unsuback(UnsubAckPacket(packetId: 2, reasonCodes: [.success, .noSubscriptionExisted])),
            .auth(AuthPacket(reasonCode: .reAuthenticate, properties: [.authenticationMethod("x")])),
            .auth(AuthPacket()),
            .disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage, properties: [.reasonString("bye")])),
        ]
        return packets
    }

    static func mixedV311Session() -> [Packet] {
        var packets: [Packet] = [.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "old"))]
        for i in 0..<30 {
            let qos = QoS(rawValue: UInt8(i % 3))!
            packets.append(.publish(PublishPacket(qos: qos, retain: i % 2 == 0, topic: "t/\(i)",
                                                  packetId: qos == .atMostOnce ? nil : UInt16(100 + i),
                                                  payload: ByteBuffer(repeating: UInt8(i), count: i * 37))))
            packets.append(.puback(PubAckPacket(packetId: UInt16(100 + i))))
        }
        packets += [.subscribe(SubscribePacket(packetId: 9, subscriptions: [TopicSubscription(filter: "#", qos: .atLeastOnce)])),
                    .suback(SubAckPacket(packetId: 9, reasonCodes: [.grantedQoS1, .unspecifiedError])),
                    .unsuback(UnsubAckPacket(packetId: 3)), .pingreq, .pingresp, .disconnect(DisconnectPacket())]
        return packets
    }

    private func encodeAll(_ packets: [Packet], version: ProtocolVersion) -> ByteBuffer {
        var b = ByteBuffer()
        for p in packets { p.encode(into: &b, version: version) }
        return b
    }

    /// Feeds `stream` in chunks chosen by `nextChunk`, decoding until nil after each chunk.
    private func feed(_ stream: ByteBuffer, version: ProtocolVersion?, nextChunk: () -> Int) throws -> [Packet] {
        var decoder = MQTTDecoder(version: version)
        var input = stream
        var acc = ByteBuffer()
        var out: [Packet] = []
        while input.readableBytes > 0 {
            var chunk = input.readSlice(length: min(nextChunk(), input.readableBytes))!
            acc.writeBuffer(&chunk)
            while let p = try decoder.decode(buffer: &acc) { out.append(p) }
            if acc.readerIndex > 4096 { acc.discardReadBytes() }
        }
        XCTAssertEqual(acc.readableBytes, 0, "bytes left undecoded")
        return out
    }

    private func checkAllFeeds(_ packets: [Packet], version: ProtocolVersion) throws {
        let stream = encodeAll(packets, version: version)

        let onePiece = try feed(stream, version: nil) { Int.max }
        XCTAssertEqual(onePiece.count, packets.count)
        XCTAssertEqual(onePiece, packets)

        let byteByByte = try feed(stream, version: nil) { 1 }
        XCTAssertEqual(byteByByte.count, packets.count)
        XCTAssertEqual(byteByByte, onePiece)

        for seed: UInt64 in [1, 42, 0xDEAD_BEEF] {
            var rng = SeededRNG(seed: seed)
            let chunked = try feed(stream, version: nil) { Int.random(in: 1...700, using: &rng) }
            XCTAssertEqual(chunked, onePiece, "seed \(seed)")
        }
    }

    func testDripFeedChunkedAndOnePieceAgreeV5() throws {
        try checkAllFeeds(Self.mixedV5Session(), version: .v5)
    }

    func testDripFeedChunkedAndOnePieceAgreeV311() throws {
        try checkAllFeeds(Self.mixedV311Session(), version: .v3_1_1)
    }

    func testEveryProperPrefixNeedsMoreBytes() throws {
        let samples: [(Packet, ProtocolVersion)] = [
            (.publish(PublishPacket(qos: .atLeastOnce, topic: "a/b", packetId: 3, properties: [.userProperty("k", "v")],
                                    payload: ByteBuffer(repeating: 1, count: 200))), .v5),
            (.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "abc", username: "u")), .v3_1_1),
            (.pingreq, .v3_1_1),
            (.puback(PubAckPacket(packetId: 1, reasonCode: .quotaExceeded)), .v5),
        ]
        for (packet, v) in samples {
            let full = Array(packet.encoded(version: v).readableBytesView)
            for n in 0..<full.count {
                var decoder = MQTTDecoder(version: v)
                var buf = ByteBuffer(bytes: full[0..<n])
                XCTAssertNil(try decoder.decode(buffer: &buf), "prefix \(n) of \(packet)")
                XCTAssertEqual(buf.readableBytes, n, "a nil result must not consume bytes")
                XCTAssertEqual(buf.readerIndex, 0)
            }
        }
    }

    func testDecodeConsumesExactlyOnePacket() throws {
        var b = ByteBuffer()
        Packet.pingreq.encode(into: &b, version: .v3_1_1)
        Packet.puback(PubAckPacket(packetId: 5)).encode(into: &b, version: .v3_1_1)
        b.writeBytes([0x30]) // start of a third packet
        var decoder = MQTTDecoder(version: .v3_1_1)
        XCTAssertEqual(try decoder.decode(buffer: &b), .pingreq)
        XCTAssertEqual(b.readableBytes, 5)
        XCTAssertEqual(try decoder.decode(buffer: &b), .puback(PubAckPacket(packetId: 5)))
        XCTAssertEqual(b.readableBytes, 1)
        XCTAssertNil(try decoder.decode(buffer: &b))
        XCTAssertEqual(b.readableBytes, 1)
    }

    func testEmptyBufferReturnsNil() throws {
        var decoder = MQTTDecoder()
        var b = ByteBuffer()
        XCTAssertNil(try decoder.decode(buffer: &b))
    }

    func testMaxPacketSizeBoundary() throws {
        let packet = Packet.publish(PublishPacket(topic: "t", payload: ByteBuffer(repeating: 7, count: 100)))
        let bytes = Array(packet.encoded(version: .v3_1_1).readableBytesView)
        // Exactly at the limit decodes.
        XCTAssertEqual(try decodeOne(bytes, version: .v3_1_1, maxPacketSize: bytes.count), packet)
        // One below throws, reporting the total size including the fixed header.
        let e = assertDecodeError(bytes, version: .v3_1_1, maxPacketSize: bytes.count - 1, .packetTooLarge)
        XCTAssertEqual(e, .packetTooLarge(size: bytes.count, limit: bytes.count - 1))
    }

    func testPacketTooLargeBeforeBodyArrives() throws {
        // Only the fixed header of a 2,000 byte packet has arrived: the limit fires already.
        var decoder = MQTTDecoder(version: .v3_1_1, maxPacketSize: 1_000)
        var b = ByteBuffer(bytes: [0x30] + varInt(1_997))
        XCTAssertThrowsError(try decoder.decode(buffer: &b)) { error in
            XCTAssertEqual(error as? MQTTCodecError, .packetTooLarge(size: 2_000, limit: 1_000))
        }
    }

    func testNIOSingleStepDecoderWrapper() throws {
        var d = MQTTPacketDecoder(maxPacketSize: 1 << 20)
        var b = ByteBuffer()
        Packet.connect(ConnectPacket(protocolVersion: .v5, clientId: "nio")).encode(into: &b, version: .v5)
        Packet.auth(AuthPacket(reasonCode: .continueAuthentication)).encode(into: &b, version: .v5)
        XCTAssertEqual(try d.decode(buffer: &b), .connect(ConnectPacket(protocolVersion: .v5, clientId: "nio")))
        XCTAssertEqual(d.decoder.version, .v5)
        XCTAssertEqual(try d.decode(buffer: &b), .auth(AuthPacket(reasonCode: .continueAuthentication)))
        XCTAssertNil(try d.decodeLast(buffer: &b, seenEOF: true))
    }

    func testVersionSetOnlyByFirstConnect() throws {
        var decoder = MQTTDecoder(version: .v5)
        var b = Packet.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: "x")).encoded(version: .v3_1_1)
        _ = try decoder.decode(buffer: &b)
        XCTAssertEqual(decoder.version, .v5, "an explicit version is not overridden")
    }
}
