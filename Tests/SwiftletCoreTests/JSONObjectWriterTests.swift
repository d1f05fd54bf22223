import Foundation
import NIOCore
import XCTest
@testable import SwiftletCore

final class JSONObjectWriterTests: XCTestCase {
    private func parse(_ b: ByteBuffer) throws -> [String: Any] {
        let data = Data(b.readableBytesView)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
    }

    func testFieldsInOrderWithEveryType() throws {
        var j = JSONObjectWriter()
        j.field("b", true)
        j.field("a", "x")
        j.field("n", -42)
        j.field("u", nil as String?)
        let out = j.finish()
        XCTAssertEqual(String(buffer: out), #"{"b":true,"a":"x","n":-42,"u":null}"#)
        let o = try parse(out)
        XCTAssertEqual(o["n"] as? Int, -42)
        XCTAssertTrue(o["u"] is NSNull)
    }

    func testEscapesWhatJSONRequiresAndKeepsUnicode() throws {
        let hostile = "a\"b\\c\nd\re\tf\u{01}g\u{1F}h/é✓🙂"
        var j = JSONObjectWriter()
        j.field("s", hostile)
        let out = j.finish()
        XCTAssertEqual(try parse(out)["s"] as? String, hostile, "round-trips through a real JSON parser")
        XCTAssertTrue(String(buffer: out).contains(#"\u0001"#))
        XCTAssertFalse(out.readableBytesView.contains(0x0A), "no raw control characters")
    }

    func testEmptyObject() {
        var j = JSONObjectWriter()
        XCTAssertEqual(String(buffer: j.finish()), "{}")
    }
}
