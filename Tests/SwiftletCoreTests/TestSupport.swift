import SwiftletConfig
import Logging
import MQTTCodec
import NIOCore
import NIOEmbedded
import XCTest
@testable import SwiftletCore

// Shared helpers for the SwiftletCore tests: a broker on an `EmbeddedEventLoop` (a manual
// clock: time moves only through `advance`) and scripted clients on `EmbeddedChannel`s.

func quietLogger() -> Logger {
    var l = Logger(label: "swiftlet-test")
    l.logLevel = .critical
    return l
}

func payload(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

func payload(size: Int) -> ByteBuffer { ByteBuffer(repeating: UInt8(ascii: "x"), count: size) }

/// A broker on an embedded event loop plus every client channel opened on it.
final class Harness {
    let loop = EmbeddedEventLoop()
    let broker: Broker
    private var clients: [TestClient] = []

    init(_ configure: (inout BrokerConfig) -> Void = { _ in }) {
        var cfg = BrokerConfig()
        cfg.sysInterval = 0
        configure(&cfg)
        broker = Broker(config: cfg, logger: quietLogger(), group: loop)
    }

    var ctx: LoopContext { broker.loops[0] }

    /// A new connected TCP-like channel with the broker's MQTT handlers.
    func client(_ version: ProtocolVersion = .v5) throws -> TestClient {
        let c = try TestClient(harness: self, version: version)
        clients.append(c)
        return c
    }

    /// Runs every task due now.
    func run() { loop.run() }

    /// Moves the manual clock forward, running every task that falls due.
    func advance(seconds: Int64) { loop.advanceTime(by: .seconds(seconds)) }

    /// A session that is not attached to any connection (for routing tests).
    func session(_ clientId: String, version: ProtocolVersion = .v5, expiry: UInt32 = 0) -> Session {
        Session(clientId: clientId, loopIndex: 0, version: version, expiry: expiry, limits: broker.config.mqtt, store: broker.store)
    }

    func shutdown() {
        for c in clients { _ = try? c.channel.finish(acceptAlreadyClosed: true) }
        loop.run()
        try? loop.syncShutdownGracefully()
    }
}

extension XCTestCase {
    /// A harness torn down (channels closed, pending timers cancelled) after the test.
    func makeHarness(_ configure: @escaping (inout BrokerConfig) -> Void = { _ in }) -> Harness {
        let h = Harness(configure)
        addTeardownBlock { h.shutdown() }
        return h
    }
}

/// A scripted MQTT client: writes encoded packets into the broker's pipeline and decodes
/// whatever the broker wrote back.
final class TestClient {
    let harness: Harness
    let channel: EmbeddedChannel
    let version: ProtocolVersion
    private var decoder: MQTTDecoder
    private var unread = ByteBuffer()
    private var nextPacketId: UInt16 = 1

    init(harness: Harness, version: ProtocolVersion) throws {
        self.harness = harness
        self.version = version
        self.decoder = MQTTDecoder(version: version, strictUTF8: false)
        channel = EmbeddedChannel(loop: harness.loop)
        try harness.broker.attachConnection(to: channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    var isActive: Bool { channel.isActive }

    func newPacketId() -> UInt16 {
        defer { nextPacketId = nextPacketId == .max ? 1 : nextPacketId + 1 }
        return nextPacketId
    }

    /// Writes one packet as the client and runs the loop.
    func send(_ packet: Packet) throws {
        try sendBytes(packet.encoded(version: version))
    }

    func sendBytes(_ bytes: ByteBuffer) throws {
        try channel.writeInbound(bytes)
        harness.run()
    }

    /// Every byte the broker has written since the last read (buffers concatenated).
    func receivedBytes() throws -> [UInt8] {
        harness.run()
        var all = unread
        unread.clear()
        while var b = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&b) }
        return Array(all.readableBytesView)
    }

    /// Every packet the broker has written since the last read.
    func packets(file: StaticString = #filePath, line: UInt = #line) throws -> [Packet] {
        var buf = ByteBuffer(bytes: try receivedBytes())
        var out: [Packet] = []
        while let p = try decoder.decode(buffer: &buf) { out.append(p) }
        XCTAssertEqual(buf.readableBytes, 0, "broker wrote a partial packet", file: file, line: line)
        return out
    }

    func publishes() throws -> [PublishPacket] {
        try packets().compactMap { if case .publish(let p) = $0 { return p }; return nil }
    }

    /// Sends CONNECT and returns the CONNACK (nil when the broker wrote none).
    @discardableResult
    func connect(_ clientId: String, cleanStart: Bool = true, keepAlive: UInt16 = 0,
                 properties: Properties = Properties(), will: Will? = nil) throws -> ConnAckPacket? {
        try send(.connect(ConnectPacket(protocolVersion: version, cleanStart: cleanStart, keepAlive: keepAlive,
                                        properties: properties, clientId: clientId, will: will)))
        for p in try packets() { if case .connack(let a) = p { return a } }
        return nil
    }

    @discardableResult
    func subscribe(_ filter: String, qos: QoS = .atMostOnce, file: StaticString = #filePath,
                   line: UInt = #line) throws -> SubAckPacket? {
        let sub = SubscribePacket(packetId: newPacketId(), subscriptions: [TopicSubscription(filter: filter, qos: qos)])
        try send(.subscribe(sub))
        for p in try packets() { if case .suback(let a) = p { return a } }
        XCTFail("no SUBACK for \(filter)", file: file, line: line)
        return nil
    }

    func publish(_ topic: String, _ body: ByteBuffer, qos: QoS = .atMostOnce, packetId: UInt16? = nil,
                 properties: Properties = Properties()) throws {
        let id = qos == .atMostOnce ? nil : (packetId ?? newPacketId())
        try send(.publish(PublishPacket(qos: qos, topic: topic, packetId: id, properties: properties, payload: body)))
    }

    func publish(_ topic: String, _ text: String, qos: QoS = .atMostOnce, packetId: UInt16? = nil,
                 properties: Properties = Properties()) throws {
        try publish(topic, payload(text), qos: qos, packetId: packetId, properties: properties)
    }

    /// Closes the connection without DISCONNECT (a network failure from the broker's view).
    func drop() {
        _ = try? channel.close().wait()
        harness.run()
    }
}

/// The reason code of the single DISCONNECT in `packets`, if any.
func disconnectReason(_ packets: [Packet]) -> ReasonCode? {
    for p in packets { if case .disconnect(let d) = p { return d.reasonCode } }
    return nil
}

/// The value of a future on an embedded loop (runs the loop; fails the test when unresolved).
func settled<T>(_ f: EventLoopFuture<T>, _ loop: EmbeddedEventLoop,
                file: StaticString = #filePath, line: UInt = #line) throws -> T {
    var r: Result<T, Error>?
    f.whenComplete { r = $0 }
    loop.run()
    guard let r else {
        XCTFail("future did not complete", file: file, line: line)
        throw CancellationError()
    }
    return try r.get()
}
