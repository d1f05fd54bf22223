import MQTTCodec
import NIOCore
import XCTest

/// Encode -> decode -> compare, for every packet type in every version where it exists.
final class RoundTripTests: XCTestCase {
    static let allVersions: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]
    static let v3Versions: [ProtocolVersion] = [.v3_1, .v3_1_1]

    // MARK: CONNECT

    func testConnectMinimalAllVersions() {
        for v in Self.allVersions {
            assertRoundTrip(.connect(ConnectPacket(protocolVersion: v, clientId: "client-1")), version: v)
            assertRoundTrip(.connect(ConnectPacket(protocolVersion: v, cleanStart: false, keepAlive: 0, clientId: "")),
                            version: v)
            assertRoundTrip(.connect(ConnectPacket(protocolVersion: v, keepAlive: 65535, clientId: "k")), version: v)
        }
    }

    func testConnectWithWillUsernamePasswordAllVersions() {
        for v in Self.allVersions {
            for qos in [QoS.atMostOnce, .atLeastOnce, .exactlyOnce] {
                for retain in [false, true] {
                    let will = Will(topic: "clients/\(v)/status", payload: buffer("offline"), qos: qos, retain: retain)
                    let c = ConnectPacket(protocolVersion: v, cleanStart: qos != .exactlyOnce, keepAlive: 30,
                                          clientId: "c-\(qos.rawValue)", will: will,
                                          username: "user", password: buffer([0, 1, 2, 0xFF]))
                    assertRoundTrip(.connect(c), version: v)
                }
            }
            // Username only; will only; empty will payload; empty password.
            assertRoundTrip(.connect(ConnectPacket(protocolVersion: v, clientId: "u", username: "alice")), version: v)
            assertRoundTrip(.connect(ConnectPacket(
                protocolVersion: v, clientId: "w",
                will: Will(topic: "t", payload: ByteBuffer(), qos: .atMostOnce, retain: false))), version: v)
            assertRoundTrip(.connect(ConnectPacket(protocolVersion: v, clientId: "p", username: "",
                                                   password: ByteBuffer())), version: v)
        }
    }

    func testConnectV5PasswordWithoutUsername() {
        // Allowed in 5.0 (3.1.2.9), forbidden in 3.1.1.
        assertRoundTrip(.connect(ConnectPacket(protocolVersion: .v5, clientId: "x", password: buffer("secret"))),
                        version: .v5)
    }

    func testConnectV5PropertiesAndWillProperties() {
        let props: Properties = [
            .sessionExpiryInterval(3600),
            .receiveMaximum(20),
            .maximumPacketSize(1_048_576),
            .topicAliasMaximum(10),
            .requestResponseInformation(1),
            .requestProblemInformation(0),
            .userProperty("region", "eu"),
            .userProperty("region", "us"),
            .authenticationMethod("SCRAM-SHA-1"),
            .authenticationData(buffer([1, 2, 3])),
        ]
        let willProps: Properties = [
            .willDelayInterval(5),
            .payloadFormatIndicator(1),
            .messageExpiryInterval(120),
            .contentType("text/plain"),
            .responseTopic("replies/x"),
            .correlationData(buffer([0xDE, 0xAD])),
            .userProperty("k", "v"),
        ]
        let will = Will(topic: "will/topic", payload: buffer("bye"), qos: .atLeastOnce, retain: true, properties: willProps)
        let c = ConnectPacket(protocolVersion: .v5, cleanStart: false, keepAlive: 10, properties: props,
                              clientId: "v5-client", will: will, username: "u", password: buffer("p"))
        assertRoundTrip(.connect(c), version: .v5)
    }

    func testConnectSetsDecoderVersion() throws {
        for v in Self.allVersions {
            var decoder = MQTTDecoder()
            XCTAssertNil(decoder.version)
            var buf = Packet.connect(ConnectPacket(protocolVersion: v, clientId: "a")).encoded(version: v)
            _ = try decoder.decode(buffer: &buf)
            XCTAssertEqual(decoder.version, v)
        }
    }

    // MARK: CONNACK

    func testConnAck() {
        for v in Self.allVersions {
            assertRoundTrip(.connack(ConnAckPacket()), version: v)
            assertRoundTrip(.connack(ConnAckPacket(sessionPresent: true)), version: v)
        }
        assertRoundTrip(.connack(ConnAckPacket(reasonCode: .notAuthorized)), version: .v5)
        assertRoundTrip(.connack(ConnAckPacket(sessionPresent: true, properties: [
            .sessionExpiryInterval(0), .receiveMaximum(100), .maximumQoS(1), .retainAvailable(0),
            .maximumPacketSize(65536), .assignedClientIdentifier("auto-123"), .topicAliasMaximum(5),
            .reasonString("ok"), .userProperty("a", "b"), .wildcardSubscriptionAvailable(1),
            .subscriptionIdentifierAvailable(1), .sharedSubscriptionAvailable(0), .serverKeepAlive(120),
            .responseInformation("resp/"), .serverReference("other:1883"), .authenticationMethod("m"),
            .authenticationData(buffer("d")),
        ])), version: .v5)
    }

    func testConnAckV3ReturnCodes() throws {
        // 3.x carries the return code mapped from the 5.0 reason code.
        let cases: [(ReasonCode, UInt8)] = [
            (.success, 0), (.unsupportedProtocolVersion, 1), (.clientIdentifierNotValid, 2),
            (.serverUnavailable, 3), (.badUserNameOrPassword, 4), (.notAuthorized, 5),
        ]
        for v in Self.v3Versions {
            for (code, raw) in cases {
                let bytes = Array(Packet.connack(ConnAckPacket(reasonCode: code)).encoded(version: v).readableBytesView)
                XCTAssertEqual(bytes, [0x20, 0x02, 0x00, raw], "\(code) in \(v)")
                XCTAssertEqual(try decodeOne(bytes, version: v),
                               .connack(ConnAckPacket(reasonCode: ReasonCode(raw))))
            }
        }
    }

    // MARK: PUBLISH

    func testPublishQoSRetainDupAllVersions() {
        for v in Self.allVersions {
            assertRoundTrip(.publish(PublishPacket(topic: "a/b", payload: buffer("hello"))), version: v)
            assertRoundTrip(.publish(PublishPacket(retain: true, topic: "a/b", payload: ByteBuffer())), version: v)
            assertRoundTrip(.publish(PublishPacket(qos: .atLeastOnce, topic: "x", packetId: 1,
                                                   payload: buffer("1"))), version: v)
            assertRoundTrip(.publish(PublishPacket(dup: true, qos: .atLeastOnce, retain: true, topic: "x/y/z",
                                                   packetId: 65535, payload: buffer("dup"))), version: v)
            assertRoundTrip(.publish(PublishPacket(qos: .exactlyOnce, topic: "q2", packetId: 42,
                                                   payload: buffer([0, 0xFF, 0x80]))), version: v)
            assertRoundTrip(.publish(PublishPacket(dup: true, qos: .exactlyOnce, topic: "/leading", packetId: 7,
                                                   payload: buffer("x"))), version: v)
            assertRoundTrip(.publish(PublishPacket(topic: "温度/センサー/🌡", payload: buffer("ünïcödé"))), version: v)
        }
    }

    func testPublishLargePayloadMultiByteLength() {
        let payload = ByteBuffer(repeating: 0x5A, count: 200_000)
        for v in Self.allVersions {
            let bytes = assertRoundTrip(.publish(PublishPacket(qos: .atLeastOnce, topic: "big", packetId: 9,
                                                               payload: payload)), version: v)
            // 200,000 + topic + id (+ props) needs a 3 byte remaining length.
            XCTAssertEqual(bytes[1] & 0x80, 0x80)
            XCTAssertEqual(bytes[2] & 0x80, 0x80)
            XCTAssertEqual(bytes[3] & 0x80, 0)
        }
    }

    func testPublishV5Properties() {
        let p = PublishPacket(qos: .atLeastOnce, retain: true, topic: "sensors/1", packetId: 3, properties: [
            .payloadFormatIndicator(1),
            .messageExpiryInterval(60),
            .topicAlias(4),
            .responseTopic("resp/1"),
            .correlationData(buffer([0, 1, 2, 3, 0xFF])),
            .userProperty("k1", "v1"),
            .userProperty("k1", "v2"),
            .userProperty("", ""),
            .subscriptionIdentifier(1),
            .subscriptionIdentifier(268_435_455),
            .subscriptionIdentifier(16_384),
            .contentType("application/json"),
        ], payload: buffer("{\"t\":21}"))
        assertRoundTrip(.publish(p), version: .v5)
        XCTAssertEqual(p.properties.subscriptionIdentifiers, [1, 268_435_455, 16_384])
        XCTAssertEqual(p.properties.userProperties.map { $0.0 + "=" + $0.1 }, ["k1=v1", "k1=v2", "="])
    }

    func testPublishV5EmptyTopicWithAlias() {
        for qos in [QoS.atMostOnce, .atLeastOnce, .exactlyOnce] {
            assertRoundTrip(.publish(PublishPacket(qos: qos, topic: "", packetId: qos == .atMostOnce ? nil : 5,
                                                   properties: [.topicAlias(1)], payload: buffer("aliased"))),
                            version: .v5)
        }
    }

    func testPublishPayloadIsSliceOfInput() throws {
        var decoder = MQTTDecoder(version: .v3_1_1)
        var buf = Packet.publish(PublishPacket(topic: "t", payload: buffer("payload"))).encoded(version: .v3_1_1)
        guard case .publish(let p)? = try decoder.decode(buffer: &buf) else { return XCTFail("not a publish") }
        XCTAssertEqual(p.payload.getString(at: p.payload.readerIndex, length: p.payload.readableBytes), "payload")
    }

    // MARK: PUBACK / PUBREC / PUBREL / PUBCOMP

    static func acks(_ a: PubAckPacket) -> [Packet] { [.puback(a), .pubrec(a), .pubrel(a), .pubcomp(a)] }

    func testPubAckFamilyAllVersions() {
        for v in Self.allVersions {
            for id: UInt16 in [1, 0x1234, 65535] {
                for p in Self.acks(PubAckPacket(packetId: id)) { assertRoundTrip(p, version: v) }
            }
        }
    }

    func testPubAckFamilyV5ReasonCodesAndProperties() {
        let variants: [PubAckPacket] = [
            PubAckPacket(packetId: 10, reasonCode: .noMatchingSubscribers),
            PubAckPacket(packetId: 10, reasonCode: .packetIdentifierNotFound),
            PubAckPacket(packetId: 10, reasonCode: .quotaExceeded, properties: [.reasonString("too many")]),
            PubAckPacket(packetId: 10, properties: [.userProperty("a", "1"), .userProperty("b", "2")]),
            PubAckPacket(packetId: 10, reasonCode: .unspecifiedError,
                         properties: [.reasonString("r"), .userProperty("x", "y")]),
        ]
        for a in variants { for p in Self.acks(a) { assertRoundTrip(p, version: .v5) } }
    }

    func testPubAckV5ShortForms() throws {
        // 2 byte body: success implied. 3 byte body: reason code, no properties.
        // 4 byte body with an empty property block decodes the same as the 3 byte form.
        XCTAssertEqual(try decodeOne(hex("40 02 00 07"), version: .v5), .puback(PubAckPacket(packetId: 7)))
        XCTAssertEqual(try decodeOne(hex("50 03 00 07 10"), version: .v5),
                       .pubrec(PubAckPacket(packetId: 7, reasonCode: .noMatchingSubscribers)))
        XCTAssertEqual(try decodeOne(hex("62 04 00 07 92 00"), version: .v5),
                       .pubrel(PubAckPacket(packetId: 7, reasonCode: .packetIdentifierNotFound)))
        XCTAssertEqual(try decodeOne(hex("70 04 00 07 00 00"), version: .v5), .pubcomp(PubAckPacket(packetId: 7)))
    }

    // MARK: SUBSCRIBE / SUBACK

    func testSubscribeAllVersions() {
        for v in Self.allVersions {
            assertRoundTrip(.subscribe(SubscribePacket(packetId: 1, subscriptions: [
                TopicSubscription(filter: "a/b", qos: .atMostOnce),
            ])), version: v)
            assertRoundTrip(.subscribe(SubscribePacket(packetId: 65535, subscriptions: [
                TopicSubscription(filter: "a/+/c", qos: .atLeastOnce),
                TopicSubscription(filter: "#", qos: .exactlyOnce),
                TopicSubscription(filter: "$SYS/#", qos: .atMostOnce),
            ])), version: v)
        }
    }

    func testSubscribeV5Options() {
        var subs: [TopicSubscription] = []
        for qos in [QoS.atMostOnce, .atLeastOnce, .exactlyOnce] {
            for rh in [RetainHandling.sendOnSubscribe, .sendIfNew, .doNotSend] {
                for noLocal in [false, true] {
                    for rap in [false, true] {
                        subs.append(TopicSubscription(filter: "f/\(subs.count)", qos: qos, noLocal: noLocal,
                                                      retainAsPublished: rap, retainHandling: rh))
                    }
                }
            }
        }
        assertRoundTrip(.subscribe(SubscribePacket(packetId: 77, subscriptions: subs)), version: .v5)
        assertRoundTrip(.subscribe(SubscribePacket(packetId: 78, properties: [
            .subscriptionIdentifier(12345), .userProperty("x", "y"),
        ], subscriptions: [TopicSubscription(filter: "$share/g/a/#", qos: .atLeastOnce, retainHandling: .doNotSend)])),
                        version: .v5)
    }

    func testSubscribeV5OptionsByte() {
        let s = TopicSubscription(filter: "t", qos: .exactlyOnce, noLocal: true, retainAsPublished: true,
                                  retainHandling: .doNotSend)
        let bytes = Array(Packet.subscribe(SubscribePacket(packetId: 1, subscriptions: [s]))
            .encoded(version: .v5).readableBytesView)
        // 82 | len | 00 01 | 00 (no props) | 00 01 74 | options 0b0010_1110
        XCTAssertEqual(bytes, hex("82 07 00 01 00 00 01 74 2E"))
    }

    func testSubAck() {
        for v in Self.allVersions {
            assertRoundTrip(.suback(SubAckPacket(packetId: 5, reasonCodes: [.grantedQoS0])), version: v)
            assertRoundTrip(.suback(SubAckPacket(packetId: 5, reasonCodes: [
                .grantedQoS0, .grantedQoS1, .grantedQoS2, .unspecifiedError,
            ])), version: v)
        }
        assertRoundTrip(.suback(SubAckPacket(packetId: 6, properties: [.reasonString("no"), .userProperty("a", "b")],
                                             reasonCodes: [.notAuthorized, .topicFilterInvalid,
                                                           .sharedSubscriptionsNotSupported, .grantedQoS1])),
                        version: .v5)
    }

    func testSubAckV3MapsFailuresTo0x80() throws {
        let p = Packet.suback(SubAckPacket(packetId: 1, reasonCodes: [.grantedQoS2, .notAuthorized]))
        XCTAssertEqual(Array(p.encoded(version: .v3_1_1).readableBytesView), hex("90 04 00 01 02 80"))
        XCTAssertEqual(Array(p.encoded(version: .v5).readableBytesView), hex("90 05 00 01 00 02 87"))
    }

    // MARK: UNSUBSCRIBE / UNSUBACK

    func testUnsubscribe() {
        for v in Self.allVersions {
            assertRoundTrip(.unsubscribe(UnsubscribePacket(packetId: 3, filters: ["a/b"])), version: v)
            assertRoundTrip(.unsubscribe(UnsubscribePacket(packetId: 4, filters: ["a/+", "#", "$share/g/x"])),
                            version: v)
        }
        assertRoundTrip(.unsubscribe(UnsubscribePacket(packetId: 4, properties: [.userProperty("u", "p")],
                                                       filters: ["x"])), version: .v5)
    }

    func testUnsubAck() {
        for v in Self.allVersions {
            assertRoundTrip(.unsuback(UnsubAckPacket(packetId: 9)), version: v)
        }
        assertRoundTrip(.unsuback(UnsubAckPacket(packetId: 9, reasonCodes: [.success, .noSubscriptionExisted,
                                                                             .notAuthorized])), version: .v5)
        assertRoundTrip(.unsuback(UnsubAckPacket(packetId: 9, properties: [.reasonString("r")],
                                                 reasonCodes: [.success])), version: .v5)
    }

    // MARK: PING, DISCONNECT, AUTH

    func testPing() {
        for v in Self.allVersions {
            XCTAssertEqual(assertRoundTrip(.pingreq, version: v), [0xC0, 0x00])
            XCTAssertEqual(assertRoundTrip(.pingresp, version: v), [0xD0, 0x00])
        }
    }

    func testDisconnect() {
        for v in Self.allVersions {
            XCTAssertEqual(assertRoundTrip(.disconnect(DisconnectPacket()), version: v), [0xE0, 0x00])
        }
        assertRoundTrip(.disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage)), version: .v5)
        assertRoundTrip(.disconnect(DisconnectPacket(reasonCode: .serverMoved, properties: [
            .serverReference("other:1883"), .reasonString("maintenance"), .userProperty("a", "b"),
        ])), version: .v5)
        assertRoundTrip(.disconnect(DisconnectPacket(properties: [.sessionExpiryInterval(0)])), version: .v5)
    }

    func testAuth() {
        assertRoundTrip(.auth(AuthPacket()), version: .v5)
        assertRoundTrip(.auth(AuthPacket(reasonCode: .continueAuthentication, properties: [
            .authenticationMethod("SCRAM-SHA-256"), .authenticationData(buffer([9, 8, 7])),
        ])), version: .v5)
        assertRoundTrip(.auth(AuthPacket(reasonCode: .reAuthenticate, properties: [
            .authenticationMethod("m"), .reasonString("again"), .userProperty("k", "v"),
        ])), version: .v5)
        assertRoundTrip(.auth(AuthPacket(reasonCode: .continueAuthentication)), version: .v5)
    }

    func testPacketTypeAccessor() {
        let pairs: [(Packet, PacketType, UInt8)] = [
            (.connect(ConnectPacket(protocolVersion: .v5, clientId: "")), .connect, 1),
            (.connack(ConnAckPacket()), .connack, 2),
            (.publish(PublishPacket(topic: "t", payload: ByteBuffer())), .publish, 3),
            (.puback(PubAckPacket(packetId: 1)), .puback, 4),
            (.pubrec(PubAckPacket(packetId: 1)), .pubrec, 5),
            (.pubrel(PubAckPacket(packetId: 1)), .pubrel, 6),
            (.pubcomp(PubAckPacket(packetId: 1)), .pubcomp, 7),
            (.subscribe(SubscribePacket(packetId: 1, subscriptions: [])), .subscribe, 8),
            (.suback(SubAckPacket(packetId: 1, reasonCodes: [])), .suback, 9),
            (.unsubscribe(UnsubscribePacket(packetId: 1, filters: [])), .unsubscribe, 10),
            (.unsuback(UnsubAckPacket(packetId: 1)), .unsuback, 11),
            (.pingreq, .pingreq, 12), (.pingresp, .pingresp, 13),
            (.disconnect(DisconnectPacket()), .disconnect, 14), (.auth(AuthPacket()), .auth, 15),
        ]
        for (p, t, raw) in pairs {
            XCTAssertEqual(p.type, t)
            XCTAssertEqual(t.rawValue, raw)
            XCTAssertEqual(p.encoded(version: .v5).getInteger(at: 0, as: UInt8.self)! >> 4, raw)
        }
    }
}
