import MQTTCodec
@testable import SwiftletRouting
import XCTest
@testable import SwiftletCore

final class TopicMatchTests: XCTestCase {
    private func assertMatch(_ filter: String, _ topic: String, _ expected: Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(TopicMatch.matches(filter: filter, topic: topic), expected,
                       "filter \(filter) vs topic \(topic)", file: file, line: line)
    }

    func testExactFilterMatchesOnlyTheSameTopic() {
        assertMatch("a/b", "a/b", true)
        assertMatch("a/b", "a/c", false)
        assertMatch("a/b", "a/b/c", false)
        assertMatch("a/b", "a", false)
        assertMatch("a/b", "A/b", false)
    }

    func testPlusMatchesExactlyOneLevel() {
        assertMatch("a/+/c", "a/b/c", true)
        assertMatch("a/+/c", "a/b/x/c", false)
        assertMatch("a/+", "a/b", true)
        assertMatch("a/+", "a", false)
        assertMatch("a/+", "a/b/c", false)
        assertMatch("+", "a", true)
        assertMatch("+", "a/b", false)
        assertMatch("+/+", "a/b", true)
    }

    func testPlusMatchesAnEmptyLevel() {
        assertMatch("a/+", "a/", true)
        assertMatch("+/b", "/b", true)
        assertMatch("+", "", true)
    }

    func testHashMatchesAnyNumberOfTrailingLevels() {
        assertMatch("#", "a", true)
        assertMatch("#", "a/b/c", true)
        assertMatch("a/#", "a/b", true)
        assertMatch("a/#", "a/b/c", true)
        assertMatch("a/#", "b/c", false)
        assertMatch("a/+/#", "a/b/c/d", true)
    }

    func testHashAlsoMatchesTheParentLevel() {
        assertMatch("a/#", "a", true)
        assertMatch("a/b/#", "a/b", true)
        assertMatch("a/b/#", "a", false)
    }

    func testLeadingWildcardDoesNotMatchDollarTopics() {
        assertMatch("#", "$SYS/x", false)
        assertMatch("+/x", "$SYS/x", false)
        assertMatch("+", "$SYS", false)
        assertMatch("+/#", "$SYS/x", false)
    }

    func testExplicitDollarFilterMatchesDollarTopics() {
        assertMatch("$SYS/#", "$SYS/x", true)
        assertMatch("$SYS/#", "$SYS/a/b", true)
        assertMatch("$SYS/+", "$SYS/x", true)
        assertMatch("$SYS/x", "$SYS/x", true)
    }

    func testWildcardsInLaterLevelsMatchDollarInsideTopics() {
        assertMatch("a/+", "a/$b", true)
        assertMatch("a/#", "a/$b/c", true)
    }

    func testLevelsKeepsEmptyLevels() {
        XCTAssertEqual(Topic.levels("/a//b/"), ["", "a", "", "b", ""])
        XCTAssertEqual(Topic.levels("a"), ["a"])
    }

    func testLevelsCutAtEverySlashByteLikeTheUTF8Reference() {
        // The separator is U+002F wherever it stands, also before a combining mark (which
        // makes "/\u{301}" one Character, so a split on Characters did not cut there).
        for topic in ["/a//b/", "", "/", "é/\u{301}x/ü", "a/\u{301}", "👩‍👩‍👧/家/🏠", "$SYS/broker/#"] {
            let reference = topic.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            XCTAssertEqual(Topic.levels(topic).map(String.init), reference, topic)
        }
        XCTAssertEqual(Topic.levels("é/\u{301}x/ü"), ["é", "\u{301}x", "ü"])
        XCTAssertTrue(TopicMatch.matches(filter: "a/+", topic: "a/\u{301}"))
    }

    func testLevelsIntoAReusedArraySplitsLikeLevels() {
        var out: [Substring] = ["left", "over"]
        for topic in ["/a//b/", "a", "", "/", "a/b/c", "sport/tennis/player1/#", "é/\u{301}x/ü", "$SYS/broker"] {
            Topic.levels(topic, into: &out)
            XCTAssertEqual(out, Topic.levels(topic), topic)
        }
    }
}

final class ParsedFilterTests: XCTestCase {
    func testPlainFilterHasNoGroup() {
        let p = ParsedFilter.parse("a/+/#")
        XCTAssertEqual(p, ParsedFilter(raw: "a/+/#", filter: "a/+/#", group: nil))
    }

    func testShareSplitsGroupAndFilter() {
        XCTAssertEqual(ParsedFilter.parse("$share/g/a/b"), ParsedFilter(raw: "$share/g/a/b", filter: "a/b", group: "g"))
        XCTAssertEqual(ParsedFilter.parse("$share/grp/#")?.filter, "#")
        XCTAssertEqual(ParsedFilter.parse("$share/grp/+/x")?.filter, "+/x")
    }

    func testQueueIsTheDollarQueueGroup() {
        XCTAssertEqual(ParsedFilter.parse("$queue/a"), ParsedFilter(raw: "$queue/a", filter: "a", group: "$queue"))
        XCTAssertEqual(ParsedFilter.parse("$queue/a/#")?.filter, "a/#")
    }

    func testShareWithoutFilterIsInvalid() {
        XCTAssertNil(ParsedFilter.parse("$share/ab"))
        XCTAssertNil(ParsedFilter.parse("$share/g/"))
        XCTAssertNil(ParsedFilter.parse("$share/"))
    }

    func testShareWithEmptyGroupIsInvalid() {
        XCTAssertNil(ParsedFilter.parse("$share//a"))
    }

    func testShareGroupWithWildcardIsInvalid() {
        XCTAssertNil(ParsedFilter.parse("$share/g+/a"))
        XCTAssertNil(ParsedFilter.parse("$share/#/a"))
        XCTAssertNil(ParsedFilter.parse("$share/+/a"))
    }

    func testShareWithInvalidFilterIsInvalid() {
        XCTAssertNil(ParsedFilter.parse("$share/g/a#"))
        XCTAssertNil(ParsedFilter.parse("$share/g/a/#/b"))
    }

    func testQueueWithoutFilterIsInvalid() {
        XCTAssertNil(ParsedFilter.parse("$queue/"))
    }

    func testInvalidPlainFiltersAreRefused() {
        XCTAssertNil(ParsedFilter.parse(""))
        XCTAssertNil(ParsedFilter.parse("a/#/b"))
        XCTAssertNil(ParsedFilter.parse("a+"))
        XCTAssertNil(ParsedFilter.parse("a/b#"))
    }
}
