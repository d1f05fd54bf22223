import MQTTCodec
import XCTest

/// Topic name and filter rules (MQTT 5.0 4.7, 3.1.1 4.7).
final class TopicTests: XCTestCase {
    func testValidTopicNames() {
        for name in ["a", "a/b", "/", "/a", "a/", "a//b", "$SYS/broker/uptime", "sport/tennis/player1",
                     "with space", "温度/🌡", "a-b_c.d"] {
            XCTAssertNoThrow(try Topic.validateName(name), name)
        }
    }

    func testInvalidTopicNames() {
        for name in ["", "#", "+", "a/#", "a/+", "a/+/b", "a+", "a#b", "sport/tennis#"] {
            XCTAssertThrowsError(try Topic.validateName(name), name) { error in
                guard case .topicNameInvalid? = error as? MQTTCodecError else {
                    return XCTFail("\(error) for \(name.debugDescription)")
                }
                XCTAssertEqual((error as? MQTTCodecError)?.reasonCode, .topicNameInvalid)
            }
        }
    }

    func testValidFilters() {
        for f in ["#", "+", "a/+/b", "a/#", "+/+", "/", "$share/g/a", "a", "a/b/c", "+/#", "/+", "+/",
                  "//", "sport/tennis/+", "sport/+/player1", "$SYS/#", "/#", "a//#", "+/+/+"] {
            XCTAssertTrue(Topic.isValidFilter(f), f)
        }
    }

    func testInvalidFilters() {
        for f in ["", "a#", "a/#/b", "a+", "+a", "a/b#", "#/", "##", "++", "a/+b", "a/b+", "sport/tennis#",
                  "#/a", "a/#b", "+#"] {
            XCTAssertFalse(Topic.isValidFilter(f), f)
        }
    }

    func testLevelCount() {
        XCTAssertEqual(Topic.levelCount("a"), 1)
        XCTAssertEqual(Topic.levelCount(""), 1)
        XCTAssertEqual(Topic.levelCount("a/b"), 2)
        XCTAssertEqual(Topic.levelCount("/"), 2)
        XCTAssertEqual(Topic.levelCount("/a"), 2)
        XCTAssertEqual(Topic.levelCount("a//b"), 3)
        XCTAssertEqual(Topic.levelCount("/finance/"), 3)
        XCTAssertEqual(Topic.levelCount("a/b/c/d/e"), 5)
        XCTAssertEqual(Topic.levelCount("ä/€"), 2)
    }

    func testHasWildcard() {
        XCTAssertTrue(Topic.hasWildcard("#"))
        XCTAssertTrue(Topic.hasWildcard("a/+/b"))
        XCTAssertFalse(Topic.hasWildcard("a/b"))
        XCTAssertFalse(Topic.hasWildcard("$share/g/a"))
    }

    // MARK: bytes, not canonical equivalence [MQTT-4.7.3-4]

    /// "é" precomposed (C3 A9) and "e" + combining acute (65 CC 81): one text to Swift's `==`,
    /// two topics to MQTT.
    static let precomposed = "caf\u{E9}", decomposed = "cafe\u{301}"

    func testUTF8KeyComparesBytes() {
        let (a, b) = (Self.precomposed, Self.decomposed)
        XCTAssertEqual(a, b, "Swift's String equality is canonical equivalence")
        XCTAssertNotEqual(UTF8Key(a), UTF8Key(b))
        XCTAssertEqual(UTF8Key(a), UTF8Key(String(decoding: Array(a.utf8), as: UTF8.self)))
        XCTAssertEqual(UTF8Key(""), UTF8Key(Substring("")))
        XCTAssertNotEqual(UTF8Key("a"), UTF8Key("b"))
        var d: [UTF8Key: Int] = [UTF8Key(a): 1]
        d[UTF8Key(b)] = 2
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d[UTF8Key(a)], 1)
        XCTAssertEqual(d[UTF8Key(b)], 2)
        // A long (heap) string against a small one, and against a substring of a longer one.
        let long = "sensors/building-7/floor-3/temperature"
        XCTAssertEqual(UTF8Key(long), UTF8Key(Topic.levels("x/" + long).dropFirst().joined(separator: "/")))
        XCTAssertEqual(UTF8Key("floor-3"), UTF8Key(Topic.levels(long)[2]))
    }

    func testSameBytes() {
        XCTAssertFalse(Topic.sameBytes(Self.precomposed, Self.decomposed))
        XCTAssertTrue(Topic.sameBytes("a/b", Substring("x/a/b").dropFirst(2)))
        XCTAssertTrue(Topic.sameBytes("", ""))
        XCTAssertFalse(Topic.sameBytes("", "a"))
        XCTAssertFalse(Topic.sameBytes("ab", "ac"))
        let t = "a/\(Self.decomposed)/b"
        XCTAssertTrue(Topic.sameBytes(utf8: t.utf8.dropFirst(2).dropLast(2), Self.decomposed.utf8))
        XCTAssertFalse(Topic.sameBytes(utf8: t.utf8.dropFirst(2).dropLast(2), Self.precomposed.utf8))
    }
}
