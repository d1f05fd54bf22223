import NIOCore
import SwiftletIPC
import XCTest

// The Swift codec against Protocol/golden: each file is built from the logical values listed in
// Protocol/golden/README.md and compared byte for byte, then decoded and compared for equality.

/// Protocol/golden, found relative to this file.
let goldenDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // SwiftletIPCTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()  // repository root
    .appendingPathComponent("Protocol/golden")

/// Reads a golden file: hex digits, whitespace ignored, lines starting with `#` are comments.
func goldenBytes(_ relativePath: String, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
    let url = goldenDirectory.appendingPathComponent(relativePath)
    let text = try String(contentsOf: url, encoding: .utf8)
    let digits = text.split(separator: "\n", omittingEmptySubsequences: false)
        .filter { !$0.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("#") }
        .joined()
        .filter { !$0.isWhitespace }
    guard digits.count % 2 == 0 else {
        XCTFail("\(relativePath): odd number of hex digits", file: file, line: line)
        return []
    }
    var out: [UInt8] = []
    out.reserveCapacity(digits.count / 2)
    var i = digits.startIndex
    while i != digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        guard let b = UInt8(digits[i..<j], radix: 16) else {
            XCTFail("\(relativePath): bad hex digits \(digits[i..<j])", file: file, line: line)
            return []
        }
        out.append(b)
        i = j
    }
    return out
}

func hexFiles(in subdirectory: String?) throws -> [String] {
    let dir = subdirectory.map { goldenDirectory.appendingPathComponent($0) } ?? goldenDirectory
    return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".hex") }.sorted()
}

func hexDump<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    bytes.map { String(format: "%02x", $0) }.joined()
}

private func text(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

private let listener = "tcp:0.0.0.0:1883"
private let aliceC1 = IPCClient(clientId: "c1", username: "alice", peerAddress: "127.0.0.1", peerPort: 50000,
                                protocolLevel: 5, listener: listener)

/// file name -> (request id, message), the values of Protocol/golden/README.md.
let goldenMessages: [(file: String, requestId: UInt32, message: IPCMessage)] = [
    ("hello.hex", 1, .hello(minVersion: 1, maxVersion: 1, name: "pyauth", sidecarVersion: "0.1.0", maxFrame: 1_048_576)),
    ("welcome.hex", 1, .welcome(version: 1, brokerVersion: "0.1.0", node: "node1", maxFrame: 65_536)),
    ("register.hex", 2, .register([
        .authn(order: 100),
        .authz(order: 200),
        .hook(name: "message.publish", sync: true, budgetMs: 500),
        .ctl(command: "pydemo", usage: "pydemo [users]"),
        .gateway(protocol: "coap"),
    ])),
    ("registered.hex", 2, .registered(hooks: ["message.publish"])),
    ("ping.hex", 7, .ping),
    ("pong.hex", 7, .pong),
    ("error.hex", 9, .error(code: 2, message: "unknown kind 0x09")),
    ("goodbye.hex", 0, .goodbye(reason: "shutdown")),
    ("authn_request.hex", 3, .authnRequest(client: aliceC1, password: text("secret"))),
    ("authn_request_anonymous.hex", 4, .authnRequest(
        client: IPCClient(clientId: "c2", username: nil, peerAddress: "::1", peerPort: 1883, protocolLevel: 4,
                          listener: listener, certCommonName: nil, certSubject: nil),
        password: nil)),
    ("authn_reply.hex", 3, .authnReply(decision: .allow, superuser: true, ttlMs: 60_000, reason: "ok")),
    ("authz_request.hex", 5, .authzRequest(
        client: IPCClient(clientId: "sensor-1", username: "bob", peerAddress: "10.0.0.7", peerPort: 8883,
                          protocolLevel: 4, listener: "ssl:0.0.0.0:8883", certCommonName: "sensor-1.example",
                          certSubject: "CN=sensor-1.example,O=Acme"),
        access: .publish, topic: "a/b", qos: 1, retain: true)),
    ("authz_reply.hex", 5, .authzReply(decision: .deny, ttlMs: 0, reason: "acl")),
    ("hook_events.hex", 0, .hookEvents([
        IPCHookEvent(hook: "client.connected", timestampMs: 1_700_000_000_000, fields: [
            IPCField("clean_start", "true"),
            IPCField("client_id", "c1"),
            IPCField("keepalive", "60"),
            IPCField("peer", "127.0.0.1:50000"),
            IPCField("protocol", "5"),
            IPCField("username", "alice"),
        ]),
        IPCHookEvent(hook: "message.publish", timestampMs: 1_700_000_000_001, fields: [
            IPCField("client_id", "c1"),
            IPCField("payload", ByteBuffer(bytes: [0x00, 0x01, 0x00, 0xFF, 0x00])),
            IPCField("qos", "1"),
            IPCField("retain", "false"),
            IPCField("topic", "a/b"),
            IPCField("username", "alice"),
        ]),
    ])),
    ("hook_publish.hex", 6, .hookPublish(
        client: aliceC1,
        message: IPCPublishMessage(topic: "a/b", payload: text("hi"), qos: 1, retain: false,
                                   userProperties: [IPCField("k", "v")]))),
    ("hook_publish_reply.hex", 6, .hookPublishReply(
        action: 1, message: IPCPublishMessage(topic: "a/c", payload: text("HI"), qos: 0, retain: true, userProperties: []))),
    ("hook_publish_reply_drop.hex", 6, .hookPublishReply(action: 2, message: nil)),
    ("ctl_request.hex", 10, .ctlRequest(command: "cmd", args: ["arg1", "arg2"])),
    ("ctl_reply.hex", 10, .ctlReply(status: 0, text: "users: alice, bob", json: #"{"users":["alice","bob"]}"#)),
    ("invalidate.hex", 0, .invalidate(scope: 1, value: "alice")),
    // Version 2: gateway sessions.
    ("gw_open.hex", 11, .gwOpen(session: 1, protocol: "mqtt-sn", peerAddress: "192.0.2.10", peerPort: 47000,
                                listener: "mqtt-sn:udp:0.0.0.0:1884")),
    ("gw_opened.hex", 11, .gwOpened(session: 1)),
    ("gw_data.hex", 0, .gwData(session: 1, data: ByteBuffer(bytes: [0xC0, 0x00]))),
    ("gw_close.hex", 0, .gwClose(session: 1, reason: "overflow")),
    // Version 3: subscriptions with an authentication answer.
    ("authn_reply_subs.hex", 3, .authnReplySubs(decision: .allow, superuser: false, ttlMs: 60_000, reason: "ok",
                                                subscriptions: [IPCSubscription(filter: "a/b", qos: 0),
                                                                IPCSubscription(filter: "c/#", qos: 2)])),
]

final class GoldenFrameTests: XCTestCase {
    func testEveryGoldenFileHasValues() throws {
        XCTAssertEqual(try hexFiles(in: nil), goldenMessages.map(\.file).sorted())
    }

    func testEveryKindHasAGoldenFrame() {
        XCTAssertEqual(Set(goldenMessages.map(\.message.kind)), Set(IPCKind.allCases))
    }

    func testEncodeMatchesGolden() throws {
        for g in goldenMessages {
            let expected = try goldenBytes(g.file)
            let encoded = g.message.frame(requestId: g.requestId).encoded
            XCTAssertEqual(hexDump(encoded.readableBytesView), hexDump(expected), g.file)
        }
    }

    func testFrameEncoderMatchesGolden() throws {
        for g in goldenMessages {
            var out = ByteBuffer()
            try IPCFrameEncoder().encode(data: g.message.frame(requestId: g.requestId), out: &out)
            XCTAssertEqual(Array(out.readableBytesView), try goldenBytes(g.file), g.file)
        }
    }

    func testDecodeMatchesValues() throws {
        for g in goldenMessages {
            var buffer = ByteBuffer(bytes: try goldenBytes(g.file))
            var decoder = IPCFrameDecoder(maxFrame: 65_536)
            guard let frame = try decoder.decode(buffer: &buffer) else {
                XCTFail("\(g.file): no complete frame")
                continue
            }
            XCTAssertEqual(buffer.readableBytes, 0, "\(g.file): bytes left after the frame")
            XCTAssertEqual(frame.kind, g.message.kind, g.file)
            XCTAssertEqual(frame.requestId, g.requestId, g.file)
            XCTAssertEqual(try IPCMessage.decode(frame), g.message, g.file)
            XCTAssertNil(try decoder.decodeLast(buffer: &buffer, seenEOF: true), g.file)
        }
    }

    func testReEncodingTheDecodedFrameGivesTheSameBytes() throws {
        for g in goldenMessages {
            let bytes = try goldenBytes(g.file)
            var buffer = ByteBuffer(bytes: bytes)
            var decoder = IPCFrameDecoder()
            let frame = try XCTUnwrap(try decoder.decode(buffer: &buffer), g.file)
            XCTAssertEqual(Array(frame.encoded.readableBytesView), bytes, g.file)
            XCTAssertEqual(Array(try IPCMessage.decode(frame).frame(requestId: frame.requestId).encoded.readableBytesView),
                           bytes, g.file)
        }
    }

    /// All golden frames in one stream, fed one byte at a time, give the same frames as the
    /// stream fed in one piece.
    func testDripFeedEqualsOnePiece() throws {
        var stream: [UInt8] = []
        for g in goldenMessages { stream += try goldenBytes(g.file) }

        var onePiece: [IPCFrame] = []
        let whole = NIOSingleStepByteToMessageProcessor(IPCFrameDecoder(maxFrame: 65_536))
        try whole.process(buffer: ByteBuffer(bytes: stream)) { onePiece.append($0) }
        try whole.finishProcessing(seenEOF: true) { onePiece.append($0) }

        var dripped: [IPCFrame] = []
        let drip = NIOSingleStepByteToMessageProcessor(IPCFrameDecoder(maxFrame: 65_536))
        for byte in stream {
            try drip.process(buffer: ByteBuffer(bytes: [byte])) { dripped.append($0) }
        }
        try drip.finishProcessing(seenEOF: true) { dripped.append($0) }

        XCTAssertEqual(onePiece.count, goldenMessages.count)
        XCTAssertEqual(dripped, onePiece)
        XCTAssertEqual(try dripped.map { try IPCMessage.decode($0) }, goldenMessages.map(\.message))
        XCTAssertEqual(dripped.map(\.requestId), goldenMessages.map(\.requestId))
    }

    /// Byte by byte with the decoder alone: nothing comes out before the last byte of a frame.
    func testNoFrameBeforeItsLastByte() throws {
        for g in goldenMessages {
            let bytes = try goldenBytes(g.file)
            var decoder = IPCFrameDecoder()
            var buffer = ByteBuffer()
            for (i, byte) in bytes.enumerated() {
                buffer.writeInteger(byte)
                let frame = try decoder.decode(buffer: &buffer)
                if i < bytes.count - 1 {
                    XCTAssertNil(frame, "\(g.file): frame after \(i + 1) of \(bytes.count) bytes")
                } else {
                    XCTAssertEqual(try frame.map { try IPCMessage.decode($0) }, g.message, g.file)
                }
            }
        }
    }
}
