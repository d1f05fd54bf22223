import NIOCore
import SidecarKit
import XCTest

final class SidecarConfigTests: XCTestCase {
    let text = """
        [sidecar]
        command = ".build/release/swiftlet-sidecar-template"
        args = []
        enabled = false
        env = {}
        [sidecar.restart]
        initial_backoff = 0.5

        [template]
        order = 20
        acl_nomatch = "ignore"
        timeout = 5
        ratio = 0.5
        tags = ["a", "b"]
        bad_tags = ["a", 1]
        [template.users.alice]
        password = "secret"
        superuser = true
        """

    func testPluginSectionsAndTypedGetters() throws {
        let config = try PluginConfig(string: text, file: "etc/plugins/template.toml")
        XCTAssertEqual(config.pluginKeys, ["template"])
        let t = try XCTUnwrap(try config.section("template"))
        XCTAssertEqual(try t.int("order", range: 0...65535), 20)
        XCTAssertEqual(try t.choice("acl_nomatch", ["allow", "deny", "ignore"]), "ignore")
        XCTAssertEqual(try t.double("timeout"), 5)
        XCTAssertEqual(try t.double("ratio"), 0.5)
        XCTAssertEqual(try t.strings("tags"), ["a", "b"])
        XCTAssertNil(try t.string("missing"))
        let users = try XCTUnwrap(try t.section("users")).sections()
        XCTAssertEqual(users.map(\.name), ["alice"])
        XCTAssertEqual(try users[0].section.string("password"), "secret")
        XCTAssertEqual(try users[0].section.bool("superuser"), true)
        XCTAssertEqual(users[0].section.path, "template.users.alice")
        XCTAssertNil(try config.section("other"))
        XCTAssertTrue(try config.sectionOrEmpty("other").keys.isEmpty)
    }

    /// The key and, from the one strict TOML reader the broker shares, its line.
    func testErrorsNameTheKey() throws {
        let config = try PluginConfig(string: text, file: "t.toml")
        let t = try XCTUnwrap(try config.section("template"))
        func message(_ body: () throws -> Any?) -> String {
            do {
                _ = try body()
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(message { try t.string("order") }, "configuration error in t.toml at line 10, key 'template.order': must be a string")
        XCTAssertEqual(message { try t.int("order", range: 0...10) },
                       "configuration error in t.toml at line 10, key 'template.order': must be between 0 and 10, not 20")
        XCTAssertEqual(message { try t.strings("bad_tags") }, "configuration error in t.toml, key 'template.bad_tags[1]': must be a string")
        XCTAssertEqual(message { try t.choice("acl_nomatch", ["allow", "deny"]) },
                       "configuration error in t.toml at line 11, key 'template.acl_nomatch': must be one of \"allow\", \"deny\", not \"ignore\"")
        XCTAssertEqual(message { try t.require("nope", t.string) }, "configuration error in t.toml, key 'template.nope': is required")
        XCTAssertTrue(message { try t.checkKeys(allowed: ["order"]) }.contains("key 'template.acl_nomatch': unknown key"))
        XCTAssertTrue(message { try config.section("sidecar") }.contains("belongs to the broker"))
        XCTAssertTrue(message { try PluginConfig(string: "[a\nb = ", file: "x.toml") }.hasPrefix("configuration error in x.toml at line"))
        XCTAssertTrue(message { try PluginConfig.load(path: "/nonexistent/x.toml") }.contains("cannot read"))
    }

    func testEnvironmentFromVariablesAndFlags() throws {
        let vars = ["SWIFTLET_SOCKET": "/run/s.sock", "SWIFTLET_SIDECAR_NAME": "auth", "SWIFTLET_PLUGIN_CONFIG": "/etc/a.toml",
                    "SWIFTLET_LOG_LEVEL": "debug"]
        let fromEnv = try SidecarEnvironment.parse(arguments: [], environment: vars)
        XCTAssertEqual(fromEnv, SidecarEnvironment(socketPath: "/run/s.sock", name: "auth", configPath: "/etc/a.toml", logLevel: .debug))
        let flags = try SidecarEnvironment.parse(arguments: ["--socket", "/tmp/x.sock", "--name=ext", "-v", "--log-level", "ERROR"],
                                                 environment: vars)
        XCTAssertEqual(flags, SidecarEnvironment(socketPath: "/tmp/x.sock", name: "ext", configPath: "/etc/a.toml",
                                                 logLevel: .error, remainingArguments: ["-v"]))
        XCTAssertThrowsError(try SidecarEnvironment.parse(arguments: ["--socket"], environment: [:])) {
            XCTAssertEqual($0 as? SidecarEnvironmentError, .missingValue("--socket"))
        }
        XCTAssertThrowsError(try SidecarEnvironment.parse(arguments: [], environment: ["SWIFTLET_LOG_LEVEL": "loud"]))
        XCTAssertNil(try SidecarEnvironment.parse(arguments: [], environment: ["SWIFTLET_SOCKET": ""]).socketPath)
    }

    func testSidecarNeedsASocketAndAValidName() {
        XCTAssertThrowsError(try Sidecar(handlers: SidecarHandlers(), environment: SidecarEnvironment(socketPath: nil))) {
            XCTAssertEqual($0 as? SidecarError, .noSocket)
        }
        XCTAssertThrowsError(try Sidecar(handlers: SidecarHandlers(), environment: SidecarEnvironment(socketPath: "/x", name: "a b"))) {
            XCTAssertEqual($0 as? SidecarError, .invalidName("a b"))
        }
    }

    func testBackoffDoublesToItsCapWithBoundedJitter() {
        var b = Backoff(initial: .milliseconds(100), maximum: .seconds(5), jitter: 0.2)
        let delays = (0..<9).map { _ in b.next(unit: 0.5).nanoseconds / 1_000_000 }
        XCTAssertEqual(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000])
        b.reset()
        XCTAssertEqual(b.next(unit: 0).nanoseconds / 1_000_000, 80)
        XCTAssertEqual(b.next(unit: 0.999_999).nanoseconds / 1_000_000, 239)
        for _ in 0..<100 { XCTAssertLessThanOrEqual(b.next(), .seconds(5)) }
    }
}

/// A plugin file that made toml++ abort (Fuzz/fuzz-config) is a configuration error.
final class PluginConfigPreflightTests: XCTestCase {
    func testMalformedPluginFilesAreErrorsNotAborts() {
        for text in ["[=]\n", "[template]\na = [ }\n", "a = 1979-05-27 7\n"] {
            XCTAssertThrowsError(try PluginConfig(string: text, file: "p.toml")) { error in
                XCTAssertTrue("\(error)".hasPrefix("configuration error in p.toml"), "\(error)")
            }
        }
    }
}
