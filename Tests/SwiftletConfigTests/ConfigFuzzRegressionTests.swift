import XCTest
@testable import SwiftletConfig

// Inputs found by Fuzz/fuzz-config (docs/fuzzing.md). Each one aborted the process inside
// toml++ (TOMLKit's parser) or was misread; each must now be a ConfigError naming the line.

final class ConfigFuzzRegressionTests: XCTestCase {
    private func refusal(_ text: String) -> ConfigError? {
        do { _ = try ConfigLoader.parse(text) } catch { return error as? ConfigError }
        return nil
    }

    private func syntaxError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        let e = refusal(text)
        XCTAssertEqual(e?.key, "(syntax)", text.debugDescription, file: file, line: line)
        return e
    }

    /// fuzz-config's first crash, `[\u{1}\0de]` in place of `[node]`, and the shorter forms of
    /// it: a table header whose name does not start with a key character hit an assertion in
    /// toml++'s parse_key (undefined behaviour in release builds).
    func testTableHeaderWithoutAKeyIsRefusedWithItsLine() {
        XCTAssertEqual(syntaxError("[\u{1}\0de]\nname = \"a/b\"\n")?.line, 1)
        for header in ["[=]", "[.a]", "[[,]]", "[[[1]]]", "[ #", "[", "[[", "[\u{1}]", "[é]", "\u{FEFF}[=]", "[\r\n", "  [ [x]"] {
            XCTAssertEqual(syntaxError("[mqtt]\nmax_qos = 1\n" + header + "\n")?.line, 3, header.debugDescription)
        }
    }

    /// fuzz-config's second crash (`listeners = [ } type = "ws", ...`): `}` or a non-ASCII
    /// line break where an array expects a value hit an assertion in toml++'s parse_value.
    func testArrayWithoutAValueIsRefusedWithItsLine() {
        for value in ["[ }", "[1, }", "[\n}", "[ \t}", "[[ }]]", "{ b = [ } }", "[\u{2028}]", "[\u{85}]", "[1,\u{2029} 2]"] {
            let e = syntaxError("[mqtt]\nmax_qos = 1\na = " + value + "\n")
            XCTAssertEqual(e?.line, value.hasPrefix("[\n") ? 4 : 3, value.debugDescription)
        }
        let crash = "# TOML forms\nlisteners = [ } type = \"ws\", bind = \"0.0.0.0:8083\", path = \"\"\"\n/mqtt\"\"\" } ]\n"
        XCTAssertEqual(syntaxError(crash)?.line, 2)
    }

    /// fuzz-config's third crash (`l = 1978-05-27Ttcp32:00Z`): a date and `T` without a time
    /// hit an assertion in toml++'s parse_time. A key of that shape stays a key.
    func testDateTimeWithoutATimeIsRefusedWithItsLine() {
        for value in ["1978-05-27Ttcp32:00Z", "1978-05-27Tx:00", "1978-05-27T:00Z", "[1978-05-27Tx:00]", "1978-05-27t"] {
            XCTAssertEqual(syntaxError("[mqtt]\nmax_qos = 1\na = " + value + "\n")?.line, 3, value)
        }
        // fuzz-config's fourth crash (`los = 0989-05-2! 7 `): a date-like value, a space and
        // one digit hit an assertion in toml++'s parse_value.
        for value in ["1979-05-27 7", "0989-05-2! 7 ", "[1979-05-27 7]", "1979-05-27 7# c", "1979-05-27 7\u{A0}"] {
            XCTAssertEqual(syntaxError("[mqtt]\nmax_qos = 1\na = " + value + "\n")?.line, 3, value)
        }
        XCTAssertEqual(refusal("a = 1979-05-27 07:32:00\n")?.key, "a")
        XCTAssertEqual(refusal("1978-05-27Tx = 1\n")?.key, "1978-05-27Tx")
        XCTAssertEqual(refusal("a = 1978-05-27T07:32:00Z\n")?.key, "a")
    }

    /// toml++ reads a C string: everything after a NUL was silently ignored.
    func testNULIsRefused() {
        XCTAssertEqual(syntaxError("[mqtt]\nmax_qos = 1\0\nmax_qos = \"not a number\"\n")?.line, 2)
    }

    /// Brackets in strings, comments and multi-line values are not headers or array slots:
    /// each text is valid TOML, refused by the schema at most.
    func testBracketsInStringsCommentsAndMultiLineValuesPass() {
        let texts = [
            "a = \"\"\"\n[=]\n}\"\"\"\n",
            "a = '''\n[ }\n'''\n",
            "# [=] and [ }\n",
            "a = [\n  [1, 2],\n  # ]\n  { b = \"}\" },\n]\n",
            "a = \"[ }\"\n",
            "a = [ \"\\\"\", ']' ]\n",
            "\"[=]\" = 1\n",
            "a = \"\"\"x\"\"\"\"\"\n[b]\n",
        ]
        for text in texts {
            let e = refusal(text)
            XCTAssertNotEqual(e?.key, "(syntax)", "\(text.debugDescription): \(String(describing: e))")
        }
    }

    /// Every header form TOML allows still parses.
    func testValidHeadersStillParse() throws {
        let c = try ConfigLoader.parse("""
        \u{FEFF}[ node ]
        name = "n1"
        [ "log" ]
        level = 'debug'
        [[listeners]]
        bind = "127.0.0.1:1884"
        [[ listeners ]]
        type = "ws"
        bind = "[::1]:8083"
        path = "/mqtt"
        ['mqtt']
        max_qos = 1
        [sys] # comment [=]
        interval = 5
        """)
        XCTAssertEqual(c.nodeName, "n1")
        XCTAssertEqual(c.listeners.count, 2)
        XCTAssertEqual(c.mqtt.maxQoS, 1)
        XCTAssertEqual(c.sysInterval, 5)
    }
}
