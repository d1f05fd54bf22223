import SwiftletConfig
import Foundation
import XCTest
@testable import SwiftletCore

/// The isolation keys of a plugin file's `[sidecar]` table (docs/sidecars.md, "Isolation").
final class PluginIsolationTests: XCTestCase {
    private func spec(_ keys: String) throws -> PluginSpec {
        try PluginSpec.parse(name: "p", file: "p.toml", text: "[sidecar]\ncommand = \"/bin/true\"\n\(keys)\n")
    }

    func testKeysAreRead() throws {
        let s = try spec("user = \"nobody\"\ngroup = \"nogroup\"\nmemory_max = \"256M\"\nopen_files = 1024\ncpu_seconds = 60\nclean_env = false")
        XCTAssertEqual(s.isolation.user, "nobody")
        XCTAssertEqual(s.isolation.group, "nogroup")
        XCTAssertEqual(s.isolation.memoryMax, 256 << 20)
        XCTAssertEqual(s.isolation.openFiles, 1024)
        XCTAssertEqual(s.isolation.cpuSeconds, 60)
        XCTAssertFalse(s.isolation.wantsCleanEnvironment, "clean_env = false wins over user")
    }

    func testMemorySizes() throws {
        XCTAssertEqual(try spec("memory_max = 33554432").isolation.memoryMax, 32 << 20)
        XCTAssertEqual(try spec("memory_max = \"1G\"").isolation.memoryMax, 1 << 30)
        XCTAssertEqual(try spec("memory_max = \"512MiB\"").isolation.memoryMax, 512 << 20)
        XCTAssertEqual(try spec("memory_max = \"65536K\"").isolation.memoryMax, 64 << 20)
        for bad in ["\"lots\"", "1024", "\"-5M\"", "\"99999999999999999999G\"", "true"] {
            XCTAssertThrowsError(try spec("memory_max = \(bad)"), bad) { e in
                XCTAssertTrue("\(e)".contains("sidecar.memory_max"), "\(e)")
            }
        }
    }

    func testDefaults() throws {
        let s = try spec("")
        XCTAssertTrue(s.isolation.isEmpty)
        XCTAssertFalse(s.isolation.wantsCleanEnvironment)
        XCTAssertTrue(try spec("user = \"nobody\"").isolation.wantsCleanEnvironment, "another user: clean by default")
        XCTAssertTrue(try spec("clean_env = true").isolation.wantsCleanEnvironment)
    }

    func testOutOfRangeAndUnknownKeysAreRefusedWithTheirName() {
        for (keys, key) in [("open_files = 2", "sidecar.open_files"), ("cpu_seconds = 0", "sidecar.cpu_seconds"),
                            ("user = \"\"", "sidecar.user"), ("group = 5", "sidecar.group"), ("memory = 5", "memory")] {
            XCTAssertThrowsError(try spec(keys), keys) { e in XCTAssertTrue("\(e)".contains(key), "\(keys): \(e)") }
        }
    }

    func testUnknownUserOrGroupIsAClearError() throws {
        var iso = SidecarIsolation()
        iso.user = "no-such-user-swiftlet"
        XCTAssertThrowsError(try iso.resolve()) { e in
            XCTAssertTrue("\(e)".contains(geteuid() == 0 ? "no such user" : "needs the broker to run as root"), "\(e)")
        }
        iso.user = nil
        iso.group = "no-such-group-swiftlet"
        XCTAssertThrowsError(try iso.resolve()) { e in
            XCTAssertTrue("\(e)".contains(geteuid() == 0 ? "no such group" : "needs the broker to run as root"), "\(e)")
        }
    }

    func testRootResolvesAUserToItsUidAndTheBrokersGroup() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root")
        var iso = SidecarIsolation()
        iso.user = "nobody"
        let r = try iso.resolve()
        XCTAssertEqual(r.uid, getpwnam("nobody")!.pointee.pw_uid)
        XCTAssertEqual(r.gid, getegid())
    }
}
