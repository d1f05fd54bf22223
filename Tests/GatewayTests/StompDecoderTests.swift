import GatewaySTOMP
import NIOCore
import XCTest

/// The STOMP frame codec: round trips, drip-fed and batched input, escaping per version,
/// content-length with NUL in bodies, and every limit refusing at the earliest byte.
final class StompDecoderTests: XCTestCase {
    private func decodeAll(_ bytes: [UInt8], decoder: StompDecoder = StompDecoder(), chunk: Int? = nil) throws -> [StompInbound] {
        var d = decoder
        var buffer = ByteBuffer()
        var out: [StompInbound] = []
        var rest = bytes[...]
        repeat {
            let n = min(chunk ?? rest.count, rest.count)
            buffer.writeBytes(rest.prefix(n))
            rest = rest.dropFirst(n)
            while let item = try d.decode(buffer: &buffer) { out.append(item) }
        } while !rest.isEmpty
        XCTAssertEqual(buffer.readableBytes, 0)
        return out
    }

    func testRoundTripEveryVersion() throws {
        for v in StompVersion.allCases {
            var body = ByteBuffer()
            body.writeBytes([1, 0, 2, 0])  // NULs: content-length carries them
            let f = StompFrame("SEND", [("destination", "/topic/a"), ("x", "y")], body: body)
            var d = StompDecoder()
            d.version = v
            let decoded = try decodeAll(Array(f.encoded(version: v).readableBytesView), decoder: d)
            guard case .frame(let g) = decoded.first else { return XCTFail() }
            XCTAssertEqual(g.command, "SEND")
            XCTAssertEqual(g["destination"], "/topic/a")
            XCTAssertEqual(g.body, body)
        }
    }

    func testDripFeedAndBatchGiveTheSameFrames() throws {
        let text = "CONNECT\naccept-version:1.2\n\n\u{0}\n\r\nSEND\ndestination:a\n\nhello\u{0}SUBSCRIBE\r\nid:1\r\ndestination:b\r\n\r\n\u{0}"
        let whole = try decodeAll(Array(text.utf8))
        XCTAssertEqual(whole.count, 5)
        XCTAssertEqual(whole[1], .heartbeat)
        for chunk in [1, 2, 3, 7] {
            XCTAssertEqual(try decodeAll(Array(text.utf8), chunk: chunk), whole, "chunk \(chunk)")
        }
        guard case .frame(let sub) = whole[4] else { return XCTFail() }
        XCTAssertEqual(sub["id"], "1", "CRLF line ends")
    }

    func testEscapingPerVersion() throws {
        let f = StompFrame("MESSAGE", [("destination", "a:b\nc\\d\re")])
        XCTAssertEqual(String(buffer: f.encoded(version: .v1_2)).split(separator: "\n")[1], "destination:a\\cb\\nc\\\\d\\re")
        var d = StompDecoder()
        d.version = .v1_2
        guard case .frame(let g) = try decodeAll(Array(f.encoded(version: .v1_2).readableBytesView), decoder: d)[0] else {
            return XCTFail()
        }
        XCTAssertEqual(g["destination"], "a:b\nc\\d\re")
        // CONNECT headers are never unescaped; an undefined escape in 1.1 is an error.
        d.version = .v1_1
        guard case .frame(let c) = try decodeAll(Array("CONNECT\nlogin:a\\tb\n\n\u{0}".utf8), decoder: d)[0] else {
            return XCTFail()
        }
        XCTAssertEqual(c["login"], "a\\tb")
        XCTAssertThrowsError(try decodeAll(Array("SEND\nx:a\\tb\n\n\u{0}".utf8), decoder: d))
        XCTAssertThrowsError(try decodeAll(Array("SEND\nx:a\\rb\n\n\u{0}".utf8), decoder: d), "\\r is 1.2 only")
        d.version = .v1_0
        guard case .frame(let old) = try decodeAll(Array("SEND\nx:a\\nb\n\n\u{0}".utf8), decoder: d)[0] else {
            return XCTFail()
        }
        XCTAssertEqual(old["x"], "a\\nb", "1.0 has no escapes")
    }

    func testRepeatedHeaderFirstWins() throws {
        guard case .frame(let f) = try decodeAll(Array("SEND\nfoo:1\nfoo:2\n\n\u{0}".utf8))[0] else { return XCTFail() }
        XCTAssertEqual(f["foo"], "1")
    }

    func testLimitsAreCheckedBeforeTheFrameIsWhole() {
        let limits = StompLimits(maxHeaders: 2, maxHeaderLength: 16, maxBodyLength: 8)
        var d = StompDecoder(limits: limits)
        var b = ByteBuffer(string: "SEND\n" + String(repeating: "x", count: 40))  // no newline yet
        XCTAssertThrowsError(try d.decode(buffer: &b)) { XCTAssertEqual($0 as? StompDecodeError, .headerTooLong(limit: 16)) }
        b = ByteBuffer(string: "SEND\na:1\nb:2\nc:3\n")
        XCTAssertThrowsError(try d.decode(buffer: &b)) { XCTAssertEqual($0 as? StompDecodeError, .tooManyHeaders(limit: 2)) }
        b = ByteBuffer(string: "SEND\n\n123456789")  // no NUL yet, already over the limit
        XCTAssertThrowsError(try d.decode(buffer: &b)) { XCTAssertEqual($0 as? StompDecodeError, .bodyTooLong(limit: 8)) }
        b = ByteBuffer(string: "SEND\ncontent-length:9\n\n")
        XCTAssertThrowsError(try d.decode(buffer: &b)) { XCTAssertEqual($0 as? StompDecodeError, .bodyTooLong(limit: 8)) }
        b = ByteBuffer(string: "SEND\ncontent-length:12345678901234\n\n")
        XCTAssertThrowsError(try d.decode(buffer: &b))
    }

    func testMalformedFrames() {
        for text in ["SEND\nno colon here\n\n\u{0}", "send\n\n\u{0}", "SEND\ncontent-length:2\n\nabc\u{0}", "\rX",
                     "SEND\ncontent-length:-1\n\n\u{0}"] {
            var d = StompDecoder()
            var b = ByteBuffer(string: text)
            XCTAssertThrowsError(try { while try d.decode(buffer: &b) != nil {} }(), text.debugDescription)
        }
    }

    /// A bad command or header line is refused as soon as the line is whole, not when a limit
    /// is reached: the frame's end may never come (a flaky test sent random bytes with few
    /// newlines and no blank line; the gateway waited).
    func testGarbageIsRefusedAtItsFirstWholeLine() throws {
        for text in ["\u{1}x\nmore", "CONNECT\nno colon\nmore", "Connect\n"] {
            var d = StompDecoder()
            var b = ByteBuffer(string: text)
            XCTAssertThrowsError(try d.decode(buffer: &b), text.debugDescription)
        }
        var d = StompDecoder()
        var b = ByteBuffer(string: "CONNECT\naccept-version:1.2\n")
        XCTAssertNil(try d.decode(buffer: &b), "a good start waits for the rest")
    }

    func testIncompleteInputIsNotConsumed() throws {
        var d = StompDecoder()
        var b = ByteBuffer(string: "SEND\ndestination:a\n\nbo")
        XCTAssertNil(try d.decode(buffer: &b))
        XCTAssertEqual(b.readableBytes, 22)
    }
}
