import CSwiftletSys
import SwiftletConfig
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOWebSocket
import XCTest
@testable import SwiftletCore

// The listener's pieces without sockets: the connection-rate bucket (manual clock), the
// PROXY protocol header parser, the CRL reader, the log limiter and the RFC 6455 checks of
// the WebSocket bridge on an EmbeddedChannel.

final class TokenBucketTests: XCTestCase {
    func testBurstThenRefillAtRate() {
        var b = TokenBucket(rate: 10, burst: 10, now: 0)
        XCTAssertEqual((0..<15).filter { _ in b.take(now: 0) }.count, 10, "a burst of one second's tokens")
        XCTAssertFalse(b.take(now: 50_000_000), "half a token after 50 ms")
        XCTAssertTrue(b.take(now: 100_000_000), "one token after 100 ms")
        XCTAssertFalse(b.take(now: 100_000_000))
        XCTAssertEqual((0..<40).filter { _ in b.take(now: 10_000_000_000) }.count, 10, "never more than the burst")
    }

    func testSlowRateStillAdmitsOne() {
        var b = TokenBucket(rate: 0.5, burst: 0.5, now: 0)
        XCTAssertTrue(b.take(now: 0))
        XCTAssertFalse(b.take(now: 1_000_000_000))
        XCTAssertTrue(b.take(now: 2_000_000_000))
    }
}

final class ProxyHeaderTests: XCTestCase {
    private func parse(_ bytes: [UInt8]) throws -> (header: ProxyHeader, length: Int)? {
        try ProxyHeader.parse(ByteBuffer(bytes: bytes))
    }

    func testV1TCP4AndTCP6() throws {
        let line = Array("PROXY TCP4 203.0.113.7 10.0.0.1 51234 1883\r\n".utf8)
        let r = try XCTUnwrap(parse(line + [0x10, 0x00]))
        XCTAssertEqual(r.header, .client(host: "203.0.113.7", port: 51234))
        XCTAssertEqual(r.length, line.count)
        let v6 = try XCTUnwrap(parse(Array("PROXY TCP6 2001:db8::7 2001:db8::1 4000 1883\r\n".utf8)))
        XCTAssertEqual(v6.header, .client(host: "2001:db8::7", port: 4000))
        XCTAssertEqual(try parse(Array("PROXY UNKNOWN\r\n".utf8))?.header, .local)
    }

    func testV1NeedsMoreBytesUntilCRLF() throws {
        let line = Array("PROXY TCP4 203.0.113.7 10.0.0.1 51234 1883\r\n".utf8)
        for n in 0..<line.count { XCTAssertNil(try parse(Array(line.prefix(n))), "prefix \(n)") }
    }

    func testV1Malformed() {
        for text in ["PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n", "PROXY TCP4 1.2.3.4 10.0.0.1 x 2\r\n", "PROXY SCTP a b 1 2\r\n",
                     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "GET / HTTP/1.1\r\n", "\u{10}\u{0c}\0\u{04}MQTT"] {
            XCTAssertThrowsError(try parse(Array(text.utf8)), text)
        }
        XCTAssertThrowsError(try parse(Array("PROXY ".utf8) + [UInt8](repeating: 0x41, count: 200)), "longer than 107 bytes")
    }

    private func v2(cmd: UInt8, family: UInt8, body: [UInt8]) -> [UInt8] {
        ProxyHeader.v2Signature + [0x20 | cmd, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    func testV2InetInet6AndLocal() throws {
        let inet = v2(cmd: 1, family: 0x11, body: [198, 51, 100, 9, 10, 0, 0, 1, 0xC3, 0x50, 0x07, 0x5B])
        let r = try XCTUnwrap(parse(inet + [0x10]))
        XCTAssertEqual(r.header, .client(host: "198.51.100.9", port: 50000))
        XCTAssertEqual(r.length, inet.count)
        var a6 = [UInt8](repeating: 0, count: 36)
        a6[0] = 0x20; a6[1] = 0x01; a6[2] = 0x0d; a6[3] = 0xb8; a6[15] = 7; a6[32] = 0x0F; a6[33] = 0xA0
        XCTAssertEqual(try parse(v2(cmd: 1, family: 0x21, body: a6))?.header, .client(host: "2001:db8:0:0:0:0:0:7", port: 4000))
        XCTAssertEqual(try parse(v2(cmd: 0, family: 0, body: []))?.header, .local)
        // Incomplete: the signature, then the announced length.
        XCTAssertNil(try parse(Array(inet.prefix(10))))
        XCTAssertNil(try parse(Array(inet.prefix(20))))
    }

    func testV2Malformed() {
        XCTAssertThrowsError(try parse(ProxyHeader.v2Signature + [0x31, 0x11, 0, 12] + [UInt8](repeating: 1, count: 12)), "version 3")
        XCTAssertThrowsError(try parse(ProxyHeader.v2Signature + [0x22, 0x11, 0, 12] + [UInt8](repeating: 1, count: 12)), "command 2")
        XCTAssertThrowsError(try parse(ProxyHeader.v2Signature + [0x21, 0x11, 0xFF, 0xFF]), "64 KB of TLVs")
        XCTAssertThrowsError(try parse(v2(cmd: 1, family: 0x11, body: [1, 2, 3])), "short INET block")
    }
}

final class RevocationListTests: XCTestCase {
    /// `openssl ca -gencrl` output: issuer CN=Swiftlet Test CA,O=Swiftlet Test, one revoked serial.
    static let crlDER = "MIIBtTCBngIBATANBgkqhkiG9w0BAQsFADAzMRkwFwYDVQQDDBBTd2lmdGxldCBUZXN0IENBMRYwFAYDVQQKDA1Td2lmdGxldCBUZXN0Fw0yNjEyMDYwODQ5MzdaFw0yNjEyMDgwODQ5MzdaMCcwJQIUbyX+howEiyH8BB9imY+NXL6iztsXDTI2MTIwNjA4NDkzN1qgDjAMMAoGA1UdFAQDAgEBMA0GCSqGSIb3DQEBCwUAA4IBAQCW2xbJawwlC2lEPa9RWt0M+AdpciNfXKx5HPWIg3mg8yor6OKvXs8twv6/k/t1EZ0PeKMkNQTILZyQM4V2ZZrxgs7C63H7+RsdiaZfLUILdLlOG0UTxcUHKBViZHT2BtUydR7nfAMdfEnGVqNahljTzRzsElwuCqNSzqJiW7F2+domQIioSi3UIvVT1dykK/ilUjbhF2NlEPY33uR71htzRhgXUhw01KZGc4OKg9NKnQmGNDdX2nvLnhO57MKji1boXIsvvfbzAaM6v7BbT3nI3UDDxmieLPbkEEX+GopSQcuwxs+UI5mR68bNzfWnUEQwA6/1erVoAASaiLnMSFDe"

    func testReadsIssuerAndSerials() throws {
        let der = Array(Data(base64Encoded: Self.crlDER)!)
        let pem = "-----BEGIN X509 CRL-----\n\(Self.crlDER)\n-----END X509 CRL-----\n"
        for list in [try RevocationList(der: der), try RevocationList(pem: Array(pem.utf8))] {
            XCTAssertEqual(list.count, 1)
            let (issuer, serials) = try XCTUnwrap(list.revoked.first)
            XCTAssertEqual(issuer.description, "O=Swiftlet Test,CN=Swiftlet Test CA")
            let serial: [UInt8] = [0x6F, 0x25, 0xFE, 0x86, 0x8C, 0x04, 0x8B, 0x21, 0xFC, 0x04, 0x1F, 0x62, 0x99, 0x8F, 0x8D,
                                   0x5C, 0xBE, 0xA2, 0xCE, 0xDB]
            XCTAssertEqual(serials, [serial])
        }
    }

    func testLeadingZerosDoNotMatter() {
        XCTAssertEqual(RevocationList.minimal([0, 0, 0x80, 1]), [0x80, 1])
    }

    func testGarbageIsRefused() {
        XCTAssertThrowsError(try RevocationList(pem: Array("not a crl".utf8)))
        XCTAssertThrowsError(try RevocationList(der: [0x30, 0x03, 0x02, 0x01, 0x01]))
        let cert = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
        XCTAssertThrowsError(try RevocationList(pem: Array(cert.utf8)), "a certificate is not a CRL")
    }
}

final class ListenerLogLimitTests: XCTestCase {
    func testLinesBeyondTheLimitAreCountedAndSummarised() {
        let sink = LineSink()
        var logger = Logger(label: "t") { _ in sink }
        logger.logLevel = .info
        var c = ListenerConfig(kind: .tcp, host: "127.0.0.1", port: 1)
        c.logLimit = 3
        let l = ListenerState(config: c, logger: logger)
        for i in 0..<10 { l.malformed(peer: "1.2.3.4:\(i)", detail: "bad", clientId: "") }
        for _ in 0..<5 { l.refused(.rate, peer: "1.2.3.4:9", detail: "over") }
        XCTAssertEqual(sink.lines.count, 3)
        XCTAssertEqual(l.malformed.load(ordering: .relaxed), 10)
        XCTAssertEqual(l.refusedCount(.rate), 5)
        XCTAssertEqual(l.logSuppressed.load(ordering: .relaxed), 12)
        l.endLogWindow()
        XCTAssertEqual(sink.lines.count, 4)
        XCTAssertTrue(sink.lines[3].contains("suppressed=12") && sink.lines[3].contains("suppressed.malformed=7")
                      && sink.lines[3].contains("suppressed.refused=5"), sink.lines[3])
        // A new window writes again; an empty one writes no summary.
        l.malformed(peer: "x", detail: "bad", clientId: "")
        l.endLogWindow()
        l.endLogWindow()
        XCTAssertEqual(sink.lines.count, 5)
    }
}

/// A LogHandler that keeps each line as "message key=value ...".
final class LineSink: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var lines: [String] { lock.withLock { stored } }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let (message, metadata) = (event.message, event.metadata)
        let meta = (metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lock.withLock { stored.append("\(message) \(meta)") }
    }
}

final class WebSocketBridgeTests: XCTestCase {
    private func channel() throws -> EmbeddedChannel {
        let ch = EmbeddedChannel(handler: WebSocketMQTTBridge())
        try ch.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return ch
    }

    private func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, masked: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: opcode, maskKey: masked ? WebSocketMaskingKey([1, 2, 3, 4])! : nil,
                       data: maskedBuffer(bytes, masked: masked))
    }

    private func maskedBuffer(_ bytes: [UInt8], masked: Bool) -> ByteBuffer {
        guard masked else { return ByteBuffer(bytes: bytes) }
        let key: [UInt8] = [1, 2, 3, 4]
        return ByteBuffer(bytes: bytes.enumerated().map { $0.element ^ key[$0.offset % 4] })
    }

    /// The close frame the bridge wrote, as its status code.
    private func closeCode(_ ch: EmbeddedChannel) throws -> UInt16? {
        guard let f = try ch.readOutbound(as: WebSocketFrame.self), f.opcode == .connectionClose else { return nil }
        var d = f.data
        return d.readInteger(as: UInt16.self)
    }

    func testFragmentedBinaryMessagePassesBytesInOrder() throws {
        let ch = try channel()
        try ch.writeInbound(frame(.binary, [0x10, 0x0C], fin: false))
        try ch.writeInbound(frame(.ping, [9]))
        try ch.writeInbound(frame(.continuation, [0x00, 0x04], fin: false))
        try ch.writeInbound(frame(.continuation, [0x4D], fin: true))
        var got: [UInt8] = []
        while let b = try ch.readInbound(as: ByteBuffer.self) { got += Array(b.readableBytesView) }
        XCTAssertEqual(got, [0x10, 0x0C, 0x00, 0x04, 0x4D])
        let pong = try XCTUnwrap(ch.readOutbound(as: WebSocketFrame.self))
        XCTAssertEqual(pong.opcode, .pong)
        XCTAssertEqual(Array(pong.data.readableBytesView), [9])
        XCTAssertTrue(ch.isActive)
    }

    func testFramesOfOneReadReachMQTTAsOneBufferAtItsEnd() throws {
        let ch = try channel()
        let tail: [UInt8] = Array(0..<21)
        ch.pipeline.syncOperations.fireChannelRead(NIOAny(frame(.binary, [0xC0, 0x00])))
        ch.pipeline.syncOperations.fireChannelRead(NIOAny(frame(.binary, tail)))
        XCTAssertNil(try ch.readInbound(as: ByteBuffer.self), "held until the read ends")
        ch.pipeline.syncOperations.fireChannelReadComplete()
        XCTAssertEqual(Array(try XCTUnwrap(ch.readInbound(as: ByteBuffer.self)).readableBytesView), [0xC0, 0x00] + tail)
        XCTAssertNil(try ch.readInbound(as: ByteBuffer.self))
        // Bytes before a bad frame still reach the MQTT handler, before the close.
        ch.pipeline.syncOperations.fireChannelRead(NIOAny(frame(.binary, [0xE0, 0x00])))
        ch.pipeline.syncOperations.fireChannelRead(NIOAny(frame(.text, [0x41])))
        XCTAssertEqual(Array(try XCTUnwrap(ch.readInbound(as: ByteBuffer.self)).readableBytesView), [0xE0, 0x00])
        XCTAssertEqual(try closeCode(ch), 1003)
    }

    func testUnmaskMatchesTheBytewiseDefinition() {
        let key = WebSocketMaskingKey([0x9A, 0x01, 0xFF, 0x3C])!
        for count in [0, 1, 3, 7, 8, 9, 16, 31, 100] {
            for offset in [0, 3] {
                let plain = (0..<(count + offset)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
                var buffer = ByteBuffer(bytes: plain)
                buffer.unmaskWebSocket(at: offset, count: count, key: key)
                let expected = plain.enumerated().map { $0.offset < offset ? $0.element : $0.element ^ key[($0.offset - offset) % 4] }
                XCTAssertEqual(Array(buffer.readableBytesView), expected, "count \(count) offset \(offset)")
            }
        }
    }

    func testProtocolViolationsCloseWithTheirCode() throws {
        let cases: [(String, [WebSocketFrame], UInt16)] = [
            ("unmasked", [frame(.binary, [1], masked: false)], 1002),
            ("text", [frame(.text, Array("hi".utf8))], 1003),
            ("unknown opcode", [frame(WebSocketOpcode(encodedWebSocketOpcode: 0x3)!, [1])], 1002),
            ("stray continuation", [frame(.continuation, [1])], 1002),
            ("binary inside fragments", [frame(.binary, [1], fin: false), frame(.binary, [2])], 1002),
            ("reserved bit", [WebSocketFrame(fin: true, rsv1: true, opcode: .binary, maskKey: WebSocketMaskingKey([1, 2, 3, 4])!,
                                             data: ByteBuffer(bytes: [1]))], 1002),
        ]
        for (name, frames, code) in cases {
            let ch = try channel()
            for f in frames { try ch.writeInbound(f) }
            while try ch.readInbound(as: ByteBuffer.self) != nil {}
            XCTAssertEqual(try closeCode(ch), code, name)
            XCTAssertFalse(ch.isActive, name)
        }
    }

    func testWritesOfOneFlushGoOutAsOneFrame() throws {
        let ch = try channel()
        ch.write(ByteBuffer(bytes: [0x30, 0x03, 0x00, 0x01, 0x61]), promise: nil)
        ch.write(ByteBuffer(bytes: [0xD0, 0x00]), promise: nil)
        XCTAssertNil(try ch.readOutbound(as: WebSocketFrame.self), "nothing before the flush")
        ch.flush()
        let f = try XCTUnwrap(ch.readOutbound(as: WebSocketFrame.self))
        XCTAssertEqual(f.opcode, .binary)
        XCTAssertNil(f.maskKey, "a server does not mask")
        XCTAssertEqual(Array(f.data.readableBytesView), [0x30, 0x03, 0x00, 0x01, 0x61, 0xD0, 0x00])
        XCTAssertNil(try ch.readOutbound(as: WebSocketFrame.self))
        // Unflushed bytes go out before a close frame.
        ch.write(ByteBuffer(bytes: [0xE0, 0x00]), promise: nil)
        ch.close(mode: .output, promise: nil)
        XCTAssertEqual(Array(try XCTUnwrap(ch.readOutbound(as: WebSocketFrame.self)).data.readableBytesView), [0xE0, 0x00])
        XCTAssertEqual(try closeCode(ch), 1000)
    }

    func testFullCloseSendsNormalClosureFirst() throws {
        let ch = try channel()
        ch.close(promise: nil)
        ch.embeddedEventLoop.run()
        XCTAssertEqual(try closeCode(ch), 1000)
        XCTAssertFalse(ch.isActive)
    }

    func testClientCloseIsEchoed() throws {
        let ch = try channel()
        try ch.writeInbound(frame(.connectionClose, [0x03, 0xE9]))  // 1001 going away
        XCTAssertEqual(try closeCode(ch), 1001)
        let one = try channel()
        try one.writeInbound(frame(.connectionClose, [0x03]))
        XCTAssertEqual(try closeCode(one), 1002, "a one-byte close body is a protocol error")
    }
}

final class AcceptGateTests: XCTestCase {
    private func gate(_ configure: (inout ListenerConfig) -> Void) throws -> (EmbeddedChannel, ListenerState) {
        var c = ListenerConfig(kind: .tcp, host: "127.0.0.1", port: 1)
        configure(&c)
        let state = ListenerState(config: c, logger: quietLogger())
        let loop = EmbeddedEventLoop()
        let server = EmbeddedChannel(handler: AcceptGate(listener: state, now: loop.now), loop: loop)
        return (server, state)
    }

    private func accept(_ server: EmbeddedChannel) throws -> (EmbeddedChannel, passed: Bool) {
        let child = EmbeddedChannel(loop: server.embeddedEventLoop)
        try child.connect(to: SocketAddress(ipAddress: "10.0.0.9", port: 4000)).wait()
        try server.writeInbound(child as Channel)
        let passed = try server.readInbound(as: Channel.self) != nil
        server.embeddedEventLoop.run()
        return (child, passed)
    }

    func testMaxConnectionsClosesTheExtraOneAndCountsIt() throws {
        let (server, state) = try gate { $0.maxConnections = 2 }
        let a = try accept(server), b = try accept(server), c = try accept(server)
        XCTAssertTrue(a.passed && b.passed)
        XCTAssertFalse(c.passed)
        XCTAssertFalse(c.0.isActive, "closed before any handler was added")
        XCTAssertEqual(state.current.load(ordering: .relaxed), 2)
        XCTAssertEqual(state.refusedCount(.maxConnections), 1)
        // One closes: room for one more.
        try a.0.close().wait()
        server.embeddedEventLoop.run()
        XCTAssertEqual(state.current.load(ordering: .relaxed), 1)
        XCTAssertTrue(try accept(server).passed)
    }

    func testRateLimitRefillsWithTheClock() throws {
        let (server, state) = try gate { $0.maxConnRate = 2 }
        XCTAssertEqual(try (0..<5).filter { _ in try accept(server).passed }.count, 2)
        XCTAssertEqual(state.refusedCount(.rate), 3)
        server.embeddedEventLoop.advanceTime(by: .milliseconds(500))
        XCTAssertTrue(try accept(server).passed, "one token after half a second at 2/s")
        XCTAssertFalse(try accept(server).passed)
        XCTAssertEqual(state.accepted.load(ordering: .relaxed), 3)
    }
}

final class TLSRecordCoalescerTests: XCTestCase {
    private func written(_ ch: EmbeddedChannel) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let b = try ch.readOutbound(as: ByteBuffer.self) { out.append(Array(b.readableBytesView)) }
        return out
    }

    func testWritesOfOneFlushReachTLSAsOneBuffer() throws {
        let ch = EmbeddedChannel(handler: TLSRecordCoalescer())
        ch.write(ByteBuffer(bytes: [1, 2]), promise: nil)
        ch.write(ByteBuffer(bytes: [3]), promise: nil)
        ch.write(ByteBuffer(bytes: [4, 5]), promise: nil)
        XCTAssertEqual(try written(ch), [], "nothing before the flush")
        ch.flush()
        XCTAssertEqual(try written(ch), [[1, 2, 3, 4, 5]])
        ch.writeAndFlush(ByteBuffer(bytes: [6]), promise: nil)
        XCTAssertEqual(try written(ch), [[6]], "a lone write passes as it is")
    }

    func testPromisesLargeWritesAndCloseKeepTheOrder() throws {
        let ch = EmbeddedChannel(handler: TLSRecordCoalescer())
        let big = [UInt8](repeating: 7, count: TLSRecordCoalescer.recordSize)
        ch.write(ByteBuffer(bytes: [1]), promise: nil)
        ch.write(ByteBuffer(bytes: [2]), promise: nil)
        ch.write(ByteBuffer(bytes: big), promise: nil)
        let p = ch.eventLoop.makePromise(of: Void.self)
        ch.write(ByteBuffer(bytes: [3]), promise: p)
        ch.write(ByteBuffer(bytes: [4]), promise: nil)
        ch.flush()
        XCTAssertEqual(try written(ch), [[1, 2], big, [3], [4]])
        XCTAssertNoThrow(try p.futureResult.wait())
    }

    func testWhatWasWrittenBeforeACloseReachesTLSBeforeIt() throws {
        let log = OutboundLog()
        let ch = EmbeddedChannel(handlers: [log, TLSRecordCoalescer()])
        ch.write(ByteBuffer(bytes: [5]), promise: nil)
        ch.write(ByteBuffer(bytes: [6]), promise: nil)
        ch.close(promise: nil)
        XCTAssertEqual(log.events, ["write 2", "close"])
    }

    func testNoBufferGrowsBeyondOneRecord() throws {
        let ch = EmbeddedChannel(handler: TLSRecordCoalescer())
        let chunk = [UInt8](repeating: 1, count: 6000)
        for _ in 0..<5 { ch.write(ByteBuffer(bytes: chunk), promise: nil) }
        ch.flush()
        XCTAssertEqual(try written(ch).map(\.count), [12_000, 12_000, 6000])
    }
}

/// Records the writes and the close that reach it, in order.
private final class OutboundLog: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var events: [String] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        events.append("write \(unwrapOutboundIn(data).readableBytes)")
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        events.append("close")
        context.close(mode: mode, promise: promise)
    }
}

/// A real listener on 127.0.0.1: what an accepted socket gets from the listening one.
final class ListenerSocketTests: XCTestCase {
    /// A broker's plain-TCP listener, one client connected to it with `client`'s options, and
    /// the channel the broker accepted for it; `body` runs, then everything is closed.
    private func withAcceptedConnection(client options: (ClientBootstrap) -> ClientBootstrap = { $0 },
                                        _ body: (_ client: Channel, _ accepted: Channel) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var cfg = BrokerConfig()
        cfg.sysInterval = 0
        let broker = Broker(config: cfg, logger: quietLogger(), group: group)
        let state = ListenerState(config: ListenerConfig(kind: .tcp, host: "127.0.0.1", port: 0), logger: quietLogger())
        let server = try await Listeners.bind(state, broker: broker)
        let port = try XCTUnwrap(server.localAddress?.port)
        let client = try await options(ClientBootstrap(group: group)).connect(host: "127.0.0.1", port: port).get()
        var accepted: Channel?
        for _ in 0..<500 where accepted == nil {
            let handler = broker.connectionsLock.withLock { broker.connections.values.first }
            if let handler {
                accepted = try await handler.eventLoop.submit { (handler.transport as? ChannelHandlerContext)?.channel }.get()
            } else {
                try await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        let channel = try XCTUnwrap(accepted, "the broker accepted the connection")
        try await body(client, channel)
        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// TCP_NODELAY is set once on the listening socket and each accepted socket inherits it
    /// (`Listeners.bind`); without it small MQTT packets would wait for the peer's delayed ACK.
    func testAcceptedConnectionsHaveNoDelay() async throws {
        // The client side turns it off: what the broker's socket has comes from the broker.
        try await withAcceptedConnection(client: { $0.channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 0) }) { client, channel in
            let noDelay = try await channel.getOption(ChannelOptions.tcpOption(.tcp_nodelay)).get()
            XCTAssertNotEqual(noDelay, 0)
            let clientNoDelay = try await client.getOption(ChannelOptions.tcpOption(.tcp_nodelay)).get()
            XCTAssertEqual(clientNoDelay, 0)
        }
    }

    /// Parking needs the accepted socket's descriptor (`ChannelDescriptor`, read from NIO's
    /// description and checked against the channel's addresses): it is the socket the client
    /// is connected to, and there is none for a channel without a socket.
    func testChannelDescriptorIsTheAcceptedSocket() async throws {
        try await withAcceptedConnection { client, channel in
            let fd = try XCTUnwrap(ChannelDescriptor.of(channel))
            var host = [CChar](repeating: 0, count: 64)
            var peerPort: CInt = 0
            XCTAssertEqual(swiftlet_socket_endpoint(fd, 1, &host, host.count, &peerPort), 0)
            XCTAssertEqual(Int(peerPort), client.localAddress?.port)
        }
        XCTAssertNil(ChannelDescriptor.of(EmbeddedChannel()))
    }
}

final class HostTextTests: XCTestCase {
    /// Our IPv4 formatting gives what inet_ntop gives (NIO's `ipAddress`).
    func testIPv4MatchesInetNtop() throws {
        for ip in ["0.0.0.0", "127.0.0.1", "1.2.3.4", "10.200.3.45", "9.99.100.255", "255.255.255.255", "192.168.0.10"] {
            let a = try SocketAddress(ipAddress: ip, port: 1883)
            XCTAssertEqual(a.hostText, ip)
            XCTAssertEqual(a.hostText, a.ipAddress)
        }
    }

    func testIPv6AndUnixSockets() throws {
        for ip in ["::1", "2001:db8::7", "fe80::1:2:3:4"] {
            let a = try SocketAddress(ipAddress: ip, port: 1883)
            XCTAssertEqual(a.hostText, a.ipAddress)
        }
        XCTAssertNil(try SocketAddress(unixDomainSocketPath: "/tmp/x.sock").hostText)
    }
}

final class ParkingLotTrimTests: XCTestCase {
    private func at(_ s: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(1_000_000_000_000 + s * 1_000_000_000)) }

    /// A trickle of parked connections is left to malloc's reuse: no trim below a batch.
    func testNoTrimBelowABatch() {
        XCTAssertNil(ParkingLot.trimDue(parked: ParkingLot.trimBatch - 1, first: at(0), last: at(1), lastTrim: at(-100)))
        XCTAssertNil(ParkingLot.trimDue(parked: 10_000, first: nil, last: at(1), lastTrim: at(-100)))
    }

    /// A burst is trimmed once parking has been quiet for a while, or after the longest
    /// delay if it goes on, and never sooner than the interval after the last trim.
    func testBurstIsTrimmedWhenQuietBoundedByDelayAndInterval() {
        let n = ParkingLot.trimBatch
        XCTAssertEqual(ParkingLot.trimDue(parked: n, first: at(0), last: at(3), lastTrim: at(-100)), at(5))
        XCTAssertEqual(ParkingLot.trimDue(parked: n, first: at(0), last: at(9), lastTrim: at(-100)), at(10))
        XCTAssertEqual(ParkingLot.trimDue(parked: n, first: at(0), last: at(1), lastTrim: at(-2)), at(8))
    }
}
