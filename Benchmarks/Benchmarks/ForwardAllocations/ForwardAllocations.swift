// Allocations the broker makes per forwarded PUBLISH, counted by package-benchmark's malloc
// interposer, the way swift-nio's allocation tests count them.
//
// The broker runs in-process on an EmbeddedEventLoop with two EmbeddedChannels: a publisher
// and a subscriber (MQTT 3.1.1, clean sessions, the subscriber on the exact topic). One
// iteration writes one QoS 0 PUBLISH into the publisher channel, runs the loop and reads the
// forwarded PUBLISH out of the subscriber channel. Inbound buffers are made before the
// measurement (a socket read allocates its buffer in NIO's pooled receive allocator, once per
// read rather than per message), so what is counted is the broker's own work: decode, route,
// deliver, write, flush.
//
// "harness" runs the same write/run/read cycle through a pass-through handler instead of the
// broker: its count is the floor that EmbeddedChannel itself costs and is to be subtracted.

import Benchmark
import Logging
import MQTTCodec
import NIOCore
import NIOEmbedded
import SwiftletConfig
import SwiftletCore
#if canImport(Glibc)
import Glibc
#endif

/// One broker with a connected publisher and subscriber.
final class ForwardFixture {
    let loop = EmbeddedEventLoop()
    let broker: Broker
    let publisher: EmbeddedChannel
    let subscriber: EmbeddedChannel
    let topic: String
    private var inbound: [ByteBuffer?] = []
    private var next = 0

    init(topic: String, qos: QoS = .atMostOnce, payload: Int = 64) throws {
        var config = BrokerConfig()
        config.listeners = []
        config.sysInterval = 0
        config.persistence.mode = .none
        broker = Broker(config: config, logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }),
                        group: loop)
        self.topic = topic
        publisher = EmbeddedChannel(loop: loop)
        subscriber = EmbeddedChannel(loop: loop)
        for (ch, id) in [(publisher, "pub"), (subscriber, "sub")] {
            try broker.attachConnection(to: ch)
            try ch.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1883)).wait()
            try ch.writeInbound(Packet.connect(ConnectPacket(protocolVersion: .v3_1_1, clientId: id)).encoded(version: .v3_1_1))
            guard case .connack(let ack)? = try Self.await(ch, loop), ack.reasonCode == .success else {
                throw FixtureError.setup("no CONNACK for \(id)")
            }
        }
        let sub = SubscribePacket(packetId: 1, subscriptions: [TopicSubscription(filter: topic, qos: qos)])
        try subscriber.writeInbound(Packet.subscribe(sub).encoded(version: .v3_1_1))
        guard case .suback? = try Self.await(subscriber, loop) else { throw FixtureError.setup("no SUBACK") }
        var body = ByteBufferAllocator().buffer(capacity: payload)
        body.writeRepeatingByte(0x2A, count: payload)
        packet = Packet.publish(PublishPacket(qos: qos, topic: topic, packetId: qos == .atMostOnce ? nil : 1, payload: body))
            .encoded(version: .v3_1_1)
        self.qos = qos
        // One round outside any measurement: caches, trie, first-use allocations.
        prepare(16)
        for _ in 0..<16 { try qos == .atMostOnce ? forwardOne() : forwardQoS1() }
    }

    let packet: ByteBuffer
    let qos: QoS
    private var pubacks: [ByteBuffer?] = []

    /// Inbound buffers for the next `n` iterations, each unique (as a socket read's is).
    func prepare(_ n: Int) {
        inbound = (0..<n).map { _ in
            var b = ByteBufferAllocator().buffer(capacity: packet.readableBytes)
            b.writeImmutableBuffer(packet)
            return b
        }
        pubacks = (0..<n).map { _ in
            var b = ByteBufferAllocator().buffer(capacity: 4)
            b.writeBytes([0x40, 0x02, 0x00, 0x00])
            return b
        }
        next = 0
    }

    @inline(__always)
    func forwardOne() throws {
        let buffer = inbound[next]!
        inbound[next] = nil
        next += 1
        try publisher.writeInbound(buffer)
        loop.run()
        guard let out = try subscriber.readOutbound(as: ByteBuffer.self) else { throw FixtureError.notForwarded }
        blackHole(out)
    }

    /// QoS 1: PUBLISH in, PUBACK to the publisher, PUBLISH (header + payload slice) to the
    /// subscriber, the subscriber's PUBACK back in.
    @inline(__always)
    func forwardQoS1() throws {
        let buffer = inbound[next]!
        inbound[next] = nil
        var ack = pubacks[next]!
        pubacks[next] = nil
        next += 1
        try publisher.writeInbound(buffer)
        loop.run()
        guard let puback = try publisher.readOutbound(as: ByteBuffer.self) else { throw FixtureError.notForwarded }
        blackHole(puback)
        guard let header = try subscriber.readOutbound(as: ByteBuffer.self) else { throw FixtureError.notForwarded }
        while let rest = try subscriber.readOutbound(as: ByteBuffer.self) { blackHole(rest) }
        // [0x32, length, topic length (2), topic, packet id (2)]
        let topicLength = Int(header.getInteger(at: header.readerIndex + 2, as: UInt16.self)!)
        let id = header.getInteger(at: header.readerIndex + 4 + topicLength, as: UInt16.self)!
        ack.setInteger(id, at: ack.readerIndex + 2)
        try subscriber.writeInbound(ack)
        loop.run()
    }

    /// Runs the loop until a packet comes out (auth and subscriptions may finish on other
    /// threads), for up to a second.
    static func await(_ ch: EmbeddedChannel, _ loop: EmbeddedEventLoop) throws -> Packet? {
        for _ in 0..<1000 {
            loop.run()
            if let p = try read(ch) { return p }
            usleep(1000)
        }
        return nil
    }

    static func read(_ ch: EmbeddedChannel) throws -> Packet? {
        guard var b = try ch.readOutbound(as: ByteBuffer.self) else { return nil }
        var d = MQTTDecoder(version: .v3_1_1)
        return try d.decode(buffer: &b)
    }
}

/// The same cycle without the broker: a handler that writes what it reads and flushes.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// The harness floor: the same buffers through an EmbeddedChannel with `EchoHandler`.
final class EchoFixture {
    let channel = EmbeddedChannel(handler: EchoHandler())
    private var inbound: [ByteBuffer?] = []
    private var next = 0

    init() throws {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1883)).wait()
        prepare(16)
        for _ in 0..<16 { cycle() }
    }

    func prepare(_ n: Int) {
        inbound = (0..<n).map { _ in
            var b = ByteBufferAllocator().buffer(capacity: 90)
            b.writeRepeatingByte(0x2A, count: 90)
            return b
        }
        next = 0
    }

    @inline(__always)
    func cycle() {
        let buffer = inbound[next]!
        inbound[next] = nil
        next += 1
        try? channel.writeInbound(buffer)
        channel.embeddedEventLoop.run()
        blackHole(try? channel.readOutbound(as: ByteBuffer.self))
    }
}

enum FixtureError: Error {
    case setup(String)
    case notForwarded
}

let metrics: [BenchmarkMetric] = [.mallocCountTotal, .mallocBytesCount, .wallClock, .instructions]
let iterationsPerRun = 1000

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: metrics, warmupIterations: 1, scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 20)

    for (name, topic) in [("short topic", "bench/t"), ("long topic", "swiftlet-bench/pairs/0")] {
        Benchmark("QoS 0 PUBLISH forwarded to 1 subscriber, \(name)") { benchmark, fixture in
            fixture.prepare(benchmark.scaledIterations.count)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { try? fixture.forwardOne() }
            benchmark.stopMeasurement()
        } setup: {
            try ForwardFixture(topic: topic)
        }
    }

    Benchmark("QoS 1 PUBLISH forwarded to 1 subscriber (PUBACK, delivery, subscriber's PUBACK)") { benchmark, fixture in
        fixture.prepare(benchmark.scaledIterations.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try? fixture.forwardQoS1() }
        benchmark.stopMeasurement()
    } setup: {
        try ForwardFixture(topic: "swiftlet-bench/pairs/0", qos: .atLeastOnce)
    }

    Benchmark("harness: EmbeddedChannel write, run, read (no broker)") { benchmark, echo in
        echo.prepare(benchmark.scaledIterations.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { echo.cycle() }
        benchmark.stopMeasurement()
    } setup: {
        try EchoFixture()
    }
}
