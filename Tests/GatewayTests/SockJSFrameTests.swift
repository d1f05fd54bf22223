import GatewaySockJS
import XCTest

/// SockJS 0.3 frames, JSON quoting, client payloads, transport wrapping and paths.
final class SockJSFrameTests: XCTestCase {
    func testFrames() {
        XCTAssertEqual(SockJSFrame.open.text, "o")
        XCTAssertEqual(SockJSFrame.heartbeat.text, "h")
        XCTAssertEqual(SockJSFrame.messages(["a", "b\"c"]).text, #"a["a","b\"c"]"#)
        XCTAssertEqual(SockJSFrame.goAway.text, #"c[3000,"Go away!"]"#)
        XCTAssertEqual(SockJSFrame.anotherConnection.text, #"c[2010,"Another connection still open"]"#)
    }

    func testQuotingEscapesEverythingOutsidePrintableASCII() throws {
        let s = "nul\u{0}\nü\u{2028}\u{FFFF}\\😀"
        let q = SockJSJSON.quote(s)
        XCTAssertTrue(q.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }, q)
        XCTAssertEqual(try SockJSJSON.messages(Array("[\(q)]".utf8)), [s], "JSON reads it back")
    }

    func testPayloads() throws {
        XCTAssertEqual(try SockJSJSON.messages(Array(#"["a","b"]"#.utf8)), ["a", "b"])
        XCTAssertEqual(try SockJSJSON.messages(Array(#""one""#.utf8)), ["one"])
        XCTAssertThrowsError(try SockJSJSON.messages([])) { XCTAssertEqual($0 as? SockJSJSON.PayloadError, .empty) }
        for broken in ["[", "[1]", "{}", "[\"a\",null]", "x"] {
            XCTAssertThrowsError(try SockJSJSON.messages(Array(broken.utf8))) { XCTAssertEqual($0 as? SockJSJSON.PayloadError, .broken) }
        }
    }

    func testTransportsWrapFrames() {
        XCTAssertEqual(SockJSTransport.xhr.wrap(.open, callback: nil), "o\n")
        XCTAssertEqual(SockJSTransport.eventSource.wrap(.open, callback: nil), "data: o\r\n\r\n")
        XCTAssertEqual(SockJSTransport.jsonp.wrap(.open, callback: "cb"), "/**/cb(\"o\");\r\n")
        XCTAssertEqual(SockJSTransport.htmlFile.wrap(.open, callback: "cb"), "<script>\np(\"o\");\n</script>\r\n")
        XCTAssertEqual(SockJSTransport.xhrStreaming.prelude(callback: nil).utf8.count, 2049)
        XCTAssertGreaterThan(SockJSTransport.htmlFile.prelude(callback: "cb").utf8.count, 1024)
        XCTAssertTrue(SockJSTransport.validCallback("a.b_c1"))
        XCTAssertFalse(SockJSTransport.validCallback("alert(1)"))
        XCTAssertFalse(SockJSTransport.validCallback(""))
    }

    func testPaths() {
        XCTAssertEqual(SockJSPath.parse("/stomp", prefix: "/stomp"), .greeting)
        XCTAssertEqual(SockJSPath.parse("/stomp/", prefix: "/stomp"), .greeting)
        XCTAssertEqual(SockJSPath.parse("/stomp/info", prefix: "/stomp"), .info)
        XCTAssertEqual(SockJSPath.parse("/stomp/iframe-1.6.1.html", prefix: "/stomp"), .iframe)
        XCTAssertEqual(SockJSPath.parse("/stomp/websocket", prefix: "/stomp"), .rawWebSocket)
        XCTAssertEqual(SockJSPath.parse("/stomp/123/abc/xhr", prefix: "/stomp"), .session(server: "123", session: "abc", transport: "xhr"))
        XCTAssertNil(SockJSPath.parse("/stomp/1.2/abc/xhr", prefix: "/stomp"))
        XCTAssertNil(SockJSPath.parse("/stomp//abc/xhr", prefix: "/stomp"))
        XCTAssertNil(SockJSPath.parse("/stompx/info", prefix: "/stomp"))
        XCTAssertNil(SockJSPath.parse("/other", prefix: "/stomp"))
    }
}
