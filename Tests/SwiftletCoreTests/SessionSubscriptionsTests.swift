import SwiftletRouting
import MQTTCodec
import XCTest
@testable import SwiftletCore

/// A session's subscription table (nothing while empty, one entry out of line, a dictionary
/// from the second) behaves as the dictionary it replaced.
final class SessionSubscriptionsTests: XCTestCase {
    private func value(_ raw: String, _ qos: QoS = .atMostOnce) -> SessionSubscriptions.Value {
        (ParsedFilter.parse(raw)!, SubscriptionOptions(qos: qos))
    }

    private func keys(_ t: SessionSubscriptions) -> [String] { t.map(\.key).sorted() }

    func testOneThenManyThenOneAgain() {
        var t = SessionSubscriptions()
        XCTAssertTrue(t.isEmpty)
        XCTAssertNil(t.updateValue(value("a/b"), forKey: "a/b"))
        XCTAssertFalse(t.isDictionary)
        XCTAssertEqual(t["a/b"]?.1.qos, .atMostOnce)
        XCTAssertNil(t["a/c"])
        // Replacing the one subscription keeps it single, with the new options.
        XCTAssertEqual(t.updateValue(value("a/b", .atLeastOnce), forKey: "a/b")?.1.qos, .atMostOnce)
        XCTAssertEqual(t.count, 1)
        XCTAssertEqual(t["a/b"]?.1.qos, .atLeastOnce)
        t["$share/g/x"] = value("$share/g/x", .exactlyOnce)
        XCTAssertTrue(t.isDictionary)
        XCTAssertEqual(keys(t), ["$share/g/x", "a/b"])
        XCTAssertEqual(t["$share/g/x"]?.0.group, "g")
        XCTAssertEqual(t["$share/g/x"]?.0.filter, "x")
        XCTAssertNil(t.updateValue(value("c"), forKey: "c"))
        XCTAssertEqual(t.count, 3)
        XCTAssertNil(t.removeValue(forKey: "zz"))
        XCTAssertEqual(t.removeValue(forKey: "c")?.0.raw, "c")
        t["$share/g/x"] = nil
        XCTAssertFalse(t.isDictionary)
        XCTAssertEqual(keys(t), ["a/b"])
        XCTAssertEqual(t.values.map(\.0.raw), ["a/b"])
        XCTAssertEqual(t.removeValue(forKey: "a/b")?.1.qos, .atLeastOnce)
        XCTAssertTrue(t.isEmpty)
        XCTAssertNil(t.removeValue(forKey: "a/b"))
        XCTAssertEqual(Array(t).count, 0)
    }

    func testIterationAndRemoveAll() {
        var t = SessionSubscriptions()
        for f in ["a", "b/+", "c/#"] { t[f] = value(f) }
        XCTAssertEqual(keys(t), ["a", "b/+", "c/#"])
        for (k, v) in t { XCTAssertEqual(k, v.0.raw) }
        var copy = t
        copy.removeAll()
        XCTAssertTrue(copy.isEmpty)
        XCTAssertEqual(t.count, 3)
    }

    /// Random changes give the same contents as a dictionary.
    func testAgreesWithADictionary() {
        var rng = SystemRandomNumberGenerator()
        let filters = ["a", "a/b", "+/b", "#", "$share/g/a", "$queue/q"]
        var t = SessionSubscriptions()
        var d: [String: SubscriptionOptions] = [:]
        for _ in 0..<1_000 {
            let f = filters.randomElement(using: &rng)!
            if Bool.random(using: &rng) {
                let q = QoS(rawValue: UInt8.random(in: 0...2, using: &rng))!
                XCTAssertEqual(t.updateValue(value(f, q), forKey: f)?.1, d.updateValue(SubscriptionOptions(qos: q), forKey: f))
            } else {
                XCTAssertEqual(t.removeValue(forKey: f)?.1, d.removeValue(forKey: f))
            }
            XCTAssertEqual(t.count, d.count)
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: t.map { ($0.key, $0.value.1) }), d)
        }
    }

    /// Filters that differ only in Unicode normalization are two subscriptions, in the single
    /// entry and in the dictionary [MQTT-4.7.3-4].
    func testFiltersCompareBytes() {
        let pre = "t/caf\u{E9}", dec = "t/cafe\u{301}"
        var t = SessionSubscriptions()
        t[pre] = value(pre)
        XCTAssertNil(t[dec])
        XCTAssertNil(t.removeValue(forKey: dec))
        XCTAssertNil(t.updateValue(value(dec, .atLeastOnce), forKey: dec))
        XCTAssertEqual(t.count, 2)
        XCTAssertEqual(t[pre]?.1.qos, .atMostOnce)
        XCTAssertEqual(t[dec]?.1.qos, .atLeastOnce)
        XCTAssertEqual(t.removeValue(forKey: pre)?.1.qos, .atMostOnce)
        XCTAssertEqual(t.keys.map { Array($0.utf8) }, [Array(dec.utf8)])
    }
}
