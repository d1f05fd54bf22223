import MQTTCodec
import NIOCore
import SwiftletRouting
import XCTest

/// The retained store keys topics by their bytes [MQTT-4.7.3-4].
final class RetainedStoreTests: XCTestCase {
    private func message(_ topic: String, _ payload: String) -> Message {
        Message(topic: topic, payload: ByteBuffer(string: payload), qos: .atMostOnce, retain: true, now: .now())
    }

    private func payloads(_ store: RetainedStore, _ filter: String) -> [String] {
        store.match(filter: filter, now: .now()).map { String(buffer: $0.payload) }.sorted()
    }

    func testCanonicallyEqualTopicsAreTwoTopics() {
        let store = RetainedStore()
        let pre = "t/caf\u{E9}", dec = "t/cafe\u{301}"
        XCTAssertTrue(store.set(message(pre, "precomposed")))
        XCTAssertTrue(store.set(message(dec, "decomposed")))
        XCTAssertEqual(store.count, 2, "the second topic does not replace the first")
        XCTAssertEqual(payloads(store, pre), ["precomposed"])
        XCTAssertEqual(payloads(store, dec), ["decomposed"])
        XCTAssertEqual(payloads(store, "t/+"), ["decomposed", "precomposed"])
        XCTAssertEqual(payloads(store, "#"), ["decomposed", "precomposed"])
        // Clearing one (empty payload) leaves the other.
        XCTAssertTrue(store.set(message(dec, "")))
        XCTAssertEqual(payloads(store, "t/#"), ["precomposed"])
        XCTAssertEqual(store.count, 1)
    }
}
