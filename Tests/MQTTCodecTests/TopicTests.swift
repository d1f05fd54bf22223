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
}
