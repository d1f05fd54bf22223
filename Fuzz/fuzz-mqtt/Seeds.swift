// The seed corpus of fuzz-mqtt (Fuzz/corpus/mqtt), written by `fuzz-mqtt --write-seeds DIR`
// from the codec's own encoder: every packet type for 3.1.1 and 5.0, each once after a
// CONNECT (a server stream, so the state machine sees it connected) and once alone with the
// version preset (so server-to-client types are decoded too), plus a whole session.
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import MQTTCodec
import NIOCore

private func bytes(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

/// One packet of each type, with the properties 5.0 allows in it.
private func samples(_ v: ProtocolVersion) -> [(name: String, packet: Packet)] {
    let v5 = v == .v5
    func props(_ p: Properties) -> Properties { v5 ? p : Properties() }
    let why: Properties = [.reasonString("why"), .userProperty("k", "v")]
    let will = Will(topic: "will/topic", payload: bytes("gone"), qos: .atLeastOnce, retain: true,
                    properties: props([.willDelayInterval(5), .contentType("text/plain"), .messageExpiryInterval(60)]))
    let connect = ConnectPacket(
        protocolVersion: v, cleanStart: false, keepAlive: 30,
        properties: props([.sessionExpiryInterval(120), .receiveMaximum(10), .maximumPacketSize(4096),
                           .topicAliasMaximum(4), .requestProblemInformation(1), .requestResponseInformation(1),
                           .userProperty("k", "v")]),
        clientId: "fuzz-client", will: will, username: "user", password: bytes("secret"))
    func publish(_ qos: QoS, _ id: UInt16?) -> Packet {
        .publish(PublishPacket(qos: qos, retain: qos == .atMostOnce, topic: "a/b/c", packetId: id,
                               properties: props([.topicAlias(1), .payloadFormatIndicator(1), .messageExpiryInterval(30),
                                                  .responseTopic("reply/to"), .correlationData(bytes("corr")),
                                                  .contentType("json"), .userProperty("k", "v")]),
                               payload: bytes("{\"t\":21.5}")))
    }
    var list: [(String, Packet)] = [
        ("connect", .connect(connect)),
        ("connack", .connack(ConnAckPacket(sessionPresent: true, reasonCode: .success,
                                           properties: props([.assignedClientIdentifier("id"), .topicAliasMaximum(5),
                                                              .serverKeepAlive(20)])))),
        ("publish_qos0", publish(.atMostOnce, nil)),
        ("publish_qos1", publish(.atLeastOnce, 1)),
        ("publish_qos2", publish(.exactlyOnce, 2)),
        ("puback", .puback(PubAckPacket(packetId: 1, reasonCode: v5 ? .noMatchingSubscribers : .success, properties: props(why)))),
        ("pubrec", .pubrec(PubAckPacket(packetId: 2, reasonCode: .success, properties: props(why)))),
        ("pubrel", .pubrel(PubAckPacket(packetId: 2, reasonCode: v5 ? .packetIdentifierNotFound : .success, properties: props(why)))),
        ("pubcomp", .pubcomp(PubAckPacket(packetId: 2, reasonCode: .success, properties: props(why)))),
        ("subscribe", .subscribe(SubscribePacket(packetId: 3, properties: props([.subscriptionIdentifier(7), .userProperty("k", "v")]),
                                                 subscriptions: [
                                                     TopicSubscription(filter: "a/+/c", qos: .exactlyOnce, noLocal: v5,
                                                                       retainAsPublished: v5, retainHandling: v5 ? .sendIfNew : .sendOnSubscribe),
                                                     TopicSubscription(filter: "$share/g/b/#", qos: .atMostOnce),
                                                 ]))),
        ("suback", .suback(SubAckPacket(packetId: 3, properties: props(why), reasonCodes: [.grantedQoS2, .unspecifiedError]))),
        ("unsubscribe", .unsubscribe(UnsubscribePacket(packetId: 4, properties: props([.userProperty("k", "v")]), filters: ["a/+/c", "b/#"]))),
        ("unsuback", .unsuback(UnsubAckPacket(packetId: 4, properties: props(why), reasonCodes: v5 ? [.success, .noSubscriptionExisted] : []))),
        ("pingreq", .pingreq),
        ("pingresp", .pingresp),
        ("disconnect", .disconnect(DisconnectPacket(reasonCode: v5 ? .disconnectWithWillMessage : .normalDisconnection,
                                                    properties: props([.sessionExpiryInterval(0), .reasonString("bye")])))),
    ]
    if v5 {
        list.append(("auth", .auth(AuthPacket(reasonCode: .continueAuthentication,
                                              properties: [.authenticationMethod("SCRAM-SHA-1"), .authenticationData(bytes("data"))]))))
    }
    return list
}

private func write(_ packets: [Packet], version: ProtocolVersion, mode: UInt8, to path: String) {
    var b = ByteBuffer()
    b.writeInteger(mode)
    for p in packets { p.encode(into: &b, version: version) }
    let data = b.readableBytesView
    guard let f = fopen(path, "wb") else { fatalError("cannot write \(path)") }
    _ = Array(data).withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    fclose(f)
}

/// Writes the corpus into `dir` (which must exist).
func writeSeeds(to dir: String) {
    for (v, prefix, preset) in [(ProtocolVersion.v3_1_1, "v311", UInt8(0x05)), (.v5, "v5", 0x06)] {
        let all = samples(v)
        let connect = all[0].packet
        for (name, packet) in all {
            // Mode 0x04: a server stream, strict_utf8.
            write(name == "connect" ? [packet] : [connect, packet], version: v, mode: 0x04, to: "\(dir)/\(prefix)_\(name).bin")
            write([packet], version: v, mode: preset, to: "\(dir)/\(prefix)_\(name)_alone.bin")
        }
        let byName = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0.packet) })
        let session = ["connect", "subscribe", "publish_qos0", "publish_qos1", "publish_qos2", "pubrel", "puback",
                       "pubrec", "pubcomp", "pingreq", "unsubscribe", "publish_qos2", "disconnect"].map { byName[$0]! }
        write(session, version: v, mode: 0x04, to: "\(dir)/\(prefix)_session.bin")
    }
    write([.connect(ConnectPacket(protocolVersion: .v3_1, clientId: "fuzz-31", username: "u", password: bytes("p"))),
           .pingreq, .disconnect(DisconnectPacket())],
          version: .v3_1, mode: 0x04, to: "\(dir)/v31_session.bin")
}
