import AuthHTTP
import SwiftletIPC
import XCTest

/// Placeholder expansion and percent-encoding: what reaches the HTTP service.
final class PlaceholderTests: XCTestCase {
    let values = PlaceholderValues(username: "alice", clientId: "c1", ipAddress: "10.0.0.7", password: Array("s3cret".utf8),
                                   topic: "a/b", access: .publish, certCommonName: "cn1", certSubject: "CN=cn1,O=x")

    func text(_ template: String, _ v: PlaceholderValues? = nil) -> String {
        String(decoding: Placeholders.expand(template, v ?? values), as: UTF8.self)
    }

    func testEveryPlaceholder() {
        XCTAssertEqual(text("%u|%c|%a|%P|%t|%A|%C|%d"), "alice|c1|10.0.0.7|s3cret|a/b|2|cn1|CN=cn1,O=x")
        XCTAssertEqual(text("%A", PlaceholderValues(access: .subscribe)), "1")
    }

    func testAbsentValuesAreEmpty() {
        XCTAssertEqual(text("[%u][%P][%t][%A][%C][%d]", PlaceholderValues(clientId: "x")), "[][][][][][]")
    }

    func testTextAroundAndUnknownPercentKept() {
        XCTAssertEqual(text("user-%u-%x-100%-%"), "user-alice-%x-100%-%")
    }

    func testValuesAreNotExpandedAgain() {
        let v = PlaceholderValues(username: "%P%c", clientId: "%u", password: Array("pw".utf8))
        XCTAssertEqual(text("%u/%c/%P", v), "%P%c/%u/pw")
    }

    func testBinaryPasswordKeptAsBytes() {
        let v = PlaceholderValues(password: [0xFF, 0x00, 0x41])
        XCTAssertEqual(Placeholders.expand("%P", v), [0xFF, 0x00, 0x41])
        XCTAssertEqual(String(decoding: Encoding.percentEncode(Placeholders.expand("%P", v)), as: UTF8.self), "%FF%00A")
    }

    func testFromClient() {
        let c = IPCClient(clientId: "id", username: nil, peerAddress: "::1", peerPort: 5, protocolLevel: 4, listener: "tcp")
        let v = PlaceholderValues(client: c, topic: "t", access: .subscribe)
        XCTAssertEqual(String(decoding: Placeholders.expand("%c %u %a %t %A", v), as: UTF8.self), "id  ::1 t 1")
    }

    func testContains() {
        XCTAssertTrue(Placeholders.contains("http://x/%u"))
        XCTAssertFalse(Placeholders.contains("http://x/%20y%"))
    }

    func testPercentEncodingLeavesOnlyUnreserved() {
        let hostile = "a&b=c%d+e#f g\nh/é?😀~._-"
        XCTAssertEqual(String(decoding: Encoding.percentEncode(hostile), as: UTF8.self),
                       "a%26b%3Dc%25d%2Be%23f%20g%0Ah%2F%C3%A9%3F%F0%9F%98%80~._-")
    }

    func testFormAndRoundTrip() {
        let pairs: [(key: String, value: [UInt8])] = [("user name", Array("a&b=c".utf8)), ("p", [])]
        let form = Encoding.form(pairs)
        XCTAssertEqual(String(decoding: form, as: UTF8.self), "user%20name=a%26b%3Dc&p=")
        XCTAssertEqual(AdminQuery.formDecode("a%26b%3Dc"), "a&b=c")
    }

    func testJSON() {
        let pairs: [(key: String, value: [UInt8])] = [("u", Array("q\"\\\n\t\u{01}é".utf8)), ("k", Array("v".utf8))]
        XCTAssertEqual(String(decoding: Encoding.jsonObject(pairs), as: UTF8.self), #"{"u":"q\"\\\n\t\u0001é","k":"v"}"#)
    }
}
