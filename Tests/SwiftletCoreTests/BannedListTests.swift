import XCTest
@testable import SwiftletCore

/// A ban names a client id or username by its bytes, as sessions do [MQTT-4.7.3-4 applied
/// to names]: a canonically equal but different id is another client.
final class BannedListTests: XCTestCase {
    func testBansCompareBytes() throws {
        let list = BannedList(path: nil)
        let pre = "caf\u{E9}", dec = "cafe\u{301}"
        try list.add(.init(kind: .clientid, who: pre, reason: "test", at: 0, until: nil))
        try list.add(.init(kind: .username, who: dec, reason: "test", at: 0, until: nil))
        XCTAssertNotNil(list.match(clientId: pre, username: nil, host: "10.0.0.1", now: 1))
        XCTAssertNil(list.match(clientId: dec, username: nil, host: "10.0.0.1", now: 1))
        XCTAssertNotNil(list.match(clientId: "x", username: dec, host: "10.0.0.1", now: 1))
        XCTAssertNil(list.match(clientId: "x", username: pre, host: "10.0.0.1", now: 1))
        XCTAssertFalse(try list.remove(.clientid, dec))
        XCTAssertTrue(try list.remove(.clientid, pre))
    }
}
