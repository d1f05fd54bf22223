import Dispatch
import MQTTCodec
import NIOCore
import XCTest

/// MQTT 5.0 properties: encoding, context rules, duplicates, value ranges, scale.
final class PropertiesTests: XCTestCase {
    /// Writes `props` and reads them back in `context`.
    private func roundTrip(_ props: Properties, _ context: PropertyContext,
                           file: StaticString = #filePath, line: UInt = #line) {
        var b = ByteBuffer()
        props.write(into: &b)
        XCTAssertEqual(b.readableBytes, props.encodedLengthWithPrefix, file: file, line: line)
        XCTAssertEqual(b.readableBytes, varInt(props.encodedLength).count + props.encodedLength, file: file, line: line)
        do {
            let back = try Properties.read(from: &b, context: context)
            XCTAssertEqual(back, props, file: file, line: line)
            XCTAssertEqual(b.readableBytes, 0, file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    /// Reads a raw property block (without length prefix) in `context`, expecting `kind`.
    private func assertReadError(_ raw: [UInt8], _ context: PropertyContext, _ kind: ErrorKind,
                                 file: StaticString = #filePath, line: UInt = #line) {
        var b = ByteBuffer(bytes: props(raw))
        XCTAssertThrowsError(try Properties.read(from: &b, context: context), file: file, line: line) { e in
            guard let e = e as? MQTTCodecError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(ErrorKind(e), kind, "\(e) for \(hexString(raw)) in \(context)", file: file, line: line)
        }
    }

    func testEveryPropertyRoundTripsInItsContext() {
        roundTrip([.payloadFormatIndicator(0), .messageExpiryInterval(UInt32.max), .contentType("c"),
                   .responseTopic("r/t"), .correlationData(buffer([0, 0xFF])), .subscriptionIdentifier(127),
                   .subscriptionIdentifier(128), .topicAlias(65535), .userProperty("k", "v")], .publish)
        roundTrip([.payloadFormatIndicator(1), .messageExpiryInterval(0), .contentType(""), .responseTopic("x"),
                   .correlationData(ByteBuffer()), .willDelayInterval(UInt32.max), .userProperty("a", "")], .will)
        roundTrip([.sessionExpiryInterval(UInt32.max), .authenticationMethod("m"), .authenticationData(buffer("d")),
                   .requestProblemInformation(1), .requestResponseInformation(0), .receiveMaximum(65535),
                   .topicAliasMaximum(0), .maximumPacketSize(UInt32.max), .userProperty("x", "y")], .connect)
        roundTrip([.sessionExpiryInterval(1), .assignedClientIdentifier("id"), .serverKeepAlive(0),
                   .authenticationMethod("m"), .authenticationData(buffer("d")), .responseInformation("ri"),
                   .serverReference("s"), .reasonString("why"), .receiveMaximum(1), .topicAliasMaximum(9),
                   .maximumQoS(0), .retainAvailable(1), .maximumPacketSize(1), .wildcardSubscriptionAvailable(0),
                   .subscriptionIdentifierAvailable(1), .sharedSubscriptionAvailable(1), .userProperty("", "")],
                  .connack)
        roundTrip([.reasonString("r"), .userProperty("a", "b")], .ack)
        roundTrip([.subscriptionIdentifier(268_435_455), .userProperty("a", "b")], .subscribe)
        roundTrip([.reasonString("r"), .userProperty("a", "b")], .suback)
        roundTrip([.userProperty("a", "b"), .userProperty("a", "b")], .unsubscribe)
        roundTrip([.reasonString("r"), .userProperty("a", "b")], .unsuback)
        roundTrip([.sessionExpiryInterval(7), .serverReference("s"), .reasonString("r"), .userProperty("a", "b")],
                  .disconnect)
        roundTrip([.authenticationMethod("m"), .authenticationData(buffer("d")), .reasonString("r"),
                   .userProperty("a", "b")], .auth)
        roundTrip([], .publish)
    }

    func testIdentifiersMatchSpec() {
        let expected: [(Property, UInt8)] = [
            (.payloadFormatIndicator(0), 0x01), (.messageExpiryInterval(0), 0x02), (.contentType(""), 0x03),
            (.responseTopic(""), 0x08), (.correlationData(ByteBuffer()), 0x09), (.subscriptionIdentifier(1), 0x0B),
            (.sessionExpiryInterval(0), 0x11), (.assignedClientIdentifier(""), 0x12), (.serverKeepAlive(0), 0x13),
            (.authenticationMethod(""), 0x15), (.authenticationData(ByteBuffer()), 0x16),
            (.requestProblemInformation(0), 0x17), (.willDelayInterval(0), 0x18),
            (.requestResponseInformation(0), 0x19), (.responseInformation(""), 0x1A), (.serverReference(""), 0x1C),
            (.reasonString(""), 0x1F), (.receiveMaximum(1), 0x21), (.topicAliasMaximum(0), 0x22),
            (.topicAlias(1), 0x23), (.maximumQoS(0), 0x24), (.retainAvailable(0), 0x25),
            (.userProperty("", ""), 0x26), (.maximumPacketSize(1), 0x27),
            (.wildcardSubscriptionAvailable(0), 0x28), (.subscriptionIdentifierAvailable(0), 0x29),
            (.sharedSubscriptionAvailable(0), 0x2A),
        ]
        for (p, id) in expected {
            XCTAssertEqual(p.identifier, id)
            var b = ByteBuffer()
            Properties([p]).write(into: &b)
            XCTAssertEqual(b.getInteger(at: 1, as: UInt8.self), id)
        }
    }

    func testTypedAccessors() {
        var p: Properties = [.topicAlias(3), .userProperty("a", "1"), .subscriptionIdentifier(5),
                             .messageExpiryInterval(9), .userProperty("b", "2"), .subscriptionIdentifier(6)]
        XCTAssertEqual(p.topicAlias, 3)
        XCTAssertEqual(p.messageExpiryInterval, 9)
        XCTAssertNil(p.contentType)
        XCTAssertEqual(p.subscriptionIdentifiers, [5, 6])
        XCTAssertEqual(p.userProperties.map { $0.0 }, ["a", "b"])
        p.remove(0x0B)
        XCTAssertEqual(p.subscriptionIdentifiers, [])
        XCTAssertEqual(p.items.count, 4)
        XCTAssertFalse(p.isEmpty)
        XCTAssertTrue(Properties().isEmpty)
    }

    // MARK: Duplicates (protocol error)

    func testDuplicateMessageExpiryInPublish() {
        let two = [0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2] as [UInt8]
        assertReadError(two, .publish, .protocolError)
        assertDecodeError(packet(0x30, str("t") + props(two)), version: .v5, .protocolError)
    }

    func testDuplicatesOfEachSingleValuedProperty() {
        assertReadError([0x01, 0, 0x01, 1], .publish, .protocolError)
        assertReadError([0x23, 0, 1, 0x23, 0, 2], .publish, .protocolError)
        assertReadError([0x09, 0, 0, 0x09, 0, 0], .publish, .protocolError)
        assertReadError([0x11, 0, 0, 0, 0, 0x11, 0, 0, 0, 0], .connect, .protocolError)
        assertReadError([0x21, 0, 1, 0x21, 0, 1], .connect, .protocolError)
        assertReadError([0x15, 0, 1, 0x61, 0x15, 0, 1, 0x61], .auth, .protocolError)
        assertReadError([0x1F, 0, 0, 0x1F, 0, 0], .ack, .protocolError)
        assertReadError([0x1C, 0, 0, 0x26, 0, 0, 0, 0, 0x1C, 0, 0], .disconnect, .protocolError)
        // Only one subscription identifier in SUBSCRIBE (3.8.2.1.2); several are fine in PUBLISH.
        assertReadError([0x0B, 1, 0x0B, 2], .subscribe, .protocolError)
    }

    func testRepeatableProperties() throws {
        var b = ByteBuffer(bytes: props([0x0B, 1, 0x0B, 2, 0x26, 0, 1, 0x61, 0, 0, 0x26, 0, 1, 0x61, 0, 0]))
        let p = try Properties.read(from: &b, context: .publish)
        XCTAssertEqual(p, [.subscriptionIdentifier(1), .subscriptionIdentifier(2), .userProperty("a", ""),
                           .userProperty("a", "")])
    }

    func testDuplicateInsideWillProperties() {
        // 5.0 CONNECT, flags 0x06 (will, clean start), will properties with two will delays.
        let willProps = props([0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 2])
        let body = str("MQTT") + [5, 0x06, 0, 60, 0] + str("c") + willProps + str("w") + str("x")
        assertDecodeError(packet(0x10, body), version: nil, .protocolError)
        // The same property once in CONNECT and once in the will is fine: separate lists.
        let ok = str("MQTT") + [5, 0x06, 0, 60] + props([0x26, 0, 1, 0x61, 0, 0]) + str("c")
            + props([0x26, 0, 1, 0x61, 0, 0]) + str("w") + str("x")
        XCTAssertNoThrow(try decodeOne(packet(0x10, ok), version: nil))
    }

    // MARK: Not allowed in this packet (malformed)

    func testSessionExpiryInPublish() {
        assertReadError([0x11, 0, 0, 0, 1], .publish, .malformed)
        assertDecodeError(packet(0x30, str("t") + props([0x11, 0, 0, 0, 1])), version: .v5, .malformed)
    }

    func testPropertiesInTheWrongPacket() {
        assertReadError([0x23, 0, 1], .connect, .malformed)           // topic alias in CONNECT
        assertReadError([0x18, 0, 0, 0, 1], .connect, .malformed)     // will delay outside the will
        assertReadError([0x11, 0, 0, 0, 1], .will, .malformed)        // session expiry in the will
        assertReadError([0x1F, 0, 0], .publish, .malformed)           // reason string in PUBLISH
        assertReadError([0x1F, 0, 0], .connect, .malformed)
        assertReadError([0x0B, 1], .unsubscribe, .malformed)          // subscription identifier in UNSUBSCRIBE
        assertReadError([0x0B, 1], .will, .malformed)
        assertReadError([0x15, 0, 0], .publish, .malformed)           // authentication method in PUBLISH
        assertReadError([0x08, 0, 1, 0x61], .connect, .malformed)     // response topic in CONNECT
        assertReadError([0x12, 0, 0], .disconnect, .malformed)        // assigned client id outside CONNACK
        assertReadError([0x24, 0], .connect, .malformed)              // maximum QoS outside CONNACK
        assertReadError([0x17, 0], .connack, .malformed)              // request problem info outside CONNECT
        assertReadError([0x1C, 0, 0], .ack, .malformed)               // server reference in PUBACK
        assertReadError([0x11, 0, 0, 0, 0], .auth, .malformed)
        // Whole packets: reason string in SUBSCRIBE, subscription identifier in PUBACK.
        assertDecodeError(packet(0x82, [0, 1] + props([0x1F, 0, 0]) + str("a") + [0]), version: .v5, .malformed)
        assertDecodeError(packet(0x40, [0, 1, 0] + props([0x0B, 1])), version: .v5, .malformed)
    }

    func testUnknownIdentifiers() {
        for id: UInt8 in [0x00, 0x04, 0x0A, 0x10, 0x14, 0x1B, 0x20, 0x2B, 0x7F, 0x80, 0xFF] {
            assertReadError([id, 0, 0, 0, 0], .publish, .malformed)
            assertReadError([id, 0, 0, 0, 0], .connack, .malformed)
        }
    }

    // MARK: Value ranges (protocol error)

    func testZeroValuesThatAreForbidden() {
        assertReadError([0x21, 0, 0], .connect, .protocolError)       // receive maximum 0
        assertReadError([0x21, 0, 0], .connack, .protocolError)
        assertReadError([0x27, 0, 0, 0, 0], .connect, .protocolError) // maximum packet size 0
        assertReadError([0x27, 0, 0, 0, 0], .connack, .protocolError)
        assertReadError([0x0B, 0], .subscribe, .protocolError)        // subscription identifier 0
        assertReadError([0x0B, 0], .publish, .protocolError)
        assertDecodeError(packet(0x82, [0, 1] + props([0x0B, 0]) + str("a") + [0]), version: .v5, .protocolError)
        let connect = str("MQTT") + [5, 0x02, 0, 60] + props([0x21, 0, 0]) + str("c")
        assertDecodeError(packet(0x10, connect), version: nil, .protocolError)
    }

    func testByteFlagsAboveOne() {
        assertReadError([0x01, 2], .publish, .protocolError)          // payload format indicator 2
        assertReadError([0x01, 0xFF], .will, .protocolError)
        assertReadError([0x17, 2], .connect, .protocolError)
        assertReadError([0x19, 2], .connect, .protocolError)
        assertReadError([0x24, 2], .connack, .protocolError)
        assertReadError([0x25, 2], .connack, .protocolError)
        assertReadError([0x28, 2], .connack, .protocolError)
        assertReadError([0x29, 2], .connack, .protocolError)
        assertReadError([0x2A, 2], .connack, .protocolError)
        assertDecodeError(packet(0x30, str("t") + props([0x01, 2])), version: .v5, .protocolError)
    }

    func testResponseTopicMustBeATopicName() {
        assertReadError([0x08, 0, 3, 0x61, 0x2F, 0x23], .publish, .protocolError)
        assertReadError([0x08, 0, 0], .will, .protocolError)
    }

    func testTruncatedAndOverlongValues() {
        // Value runs past the declared property length, although the packet has more bytes.
        var b = ByteBuffer(bytes: [3, 0x02, 0, 0, 0, 0, 0xAA, 0xBB])
        XCTAssertThrowsError(try Properties.read(from: &b, context: .publish)) {
            XCTAssertEqual(($0 as? MQTTCodecError).map(ErrorKind.init), .malformed)
        }
        assertReadError([0x26, 0, 1, 0x61], .publish, .malformed)      // user property without value
        assertReadError([0x0B, 0x80, 0x80, 0x80, 0x80, 0x01], .publish, .malformed) // 5 byte varint
        assertReadError([0x0B, 0xFF], .publish, .malformed)            // cut varint
        // Property length itself longer than 4 bytes.
        var c = ByteBuffer(bytes: [0x80, 0x80, 0x80, 0x80, 0x01])
        XCTAssertThrowsError(try Properties.read(from: &c, context: .publish))
    }

    // MARK: Scale

    private func publishWithUserProperties(_ n: Int) -> [UInt8] {
        var items: [Property] = []
        items.reserveCapacity(n)
        for i in 0..<n { items.append(.userProperty("k", String(i % 10))) }
        let p = Packet.publish(PublishPacket(qos: .atLeastOnce, topic: "many", packetId: 1,
                                             properties: Properties(items), payload: buffer("x")))
        return Array(p.encoded(version: .v5).readableBytesView)
    }

    func testHundredThousandUserPropertiesDecode() throws {
        // Performance is measured in benchmarks, not asserted here: this checks the
        // packet decodes completely and intact.
        let big = publishWithUserProperties(100_000)
        XCTAssertGreaterThan(big.count, 700_000)
        var decoder = MQTTDecoder(version: .v5, maxPacketSize: big.count)
        var b = ByteBuffer(bytes: big)
        guard case .publish(let p)? = try decoder.decode(buffer: &b) else { return XCTFail("not a publish") }
        XCTAssertEqual(p.properties.items.count, 100_000)
        XCTAssertEqual(p.properties.userProperties.last?.1, "9")
        XCTAssertEqual(p.payload, buffer("x"))

        // The same packet is refused when it exceeds the limit.
        assertDecodeError(big, version: .v5, maxPacketSize: big.count - 1, .packetTooLarge)
    }
}
