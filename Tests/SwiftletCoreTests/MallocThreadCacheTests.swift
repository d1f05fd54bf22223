import Foundation
import XCTest
@testable import SwiftletCore

/// The broker turns glibc's per-thread malloc cache off (docs/decisions/0010); these check how
/// it reads GLIBC_TUNABLES and what its sidecars are given. The re-execution itself is checked
/// against the running broker (Tests/system/test_recon.py).
final class MallocThreadCacheTests: XCTestCase {
    private var saved: String?

    override func setUp() { saved = ProcessInfo.processInfo.environment["GLIBC_TUNABLES"] }
    override func tearDown() {
        if let saved { setenv("GLIBC_TUNABLES", saved, 1) } else { unsetenv("GLIBC_TUNABLES") }
    }

    func testOffOnlyWhenTheTunableIsZero() {
        let cases: [(String?, Bool)] = [
            (nil, false),
            ("", false),
            ("glibc.malloc.tcache_count=0", true),
            ("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0", true),
            ("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4", true),
            ("glibc.malloc.tcache_count=7", false),
            // glibc reads numbers as strtoul with base 0, and applies the last setting.
            ("glibc.malloc.tcache_count=00", true),
            ("glibc.malloc.tcache_count=0x0", true),
            ("glibc.malloc.tcache_count=0x10", false),
            ("glibc.malloc.tcache_count=", false),
            ("glibc.malloc.tcache_count=0abc", false),
            ("xglibc.malloc.tcache_count=0", false),
            ("glibc.malloc.tcache_count=1:glibc.malloc.tcache_count=0", true),
            ("glibc.malloc.tcache_count=0:glibc.malloc.tcache_count=7", false),
        ]
        for (value, off) in cases {
            if let value { setenv("GLIBC_TUNABLES", value, 1) } else { unsetenv("GLIBC_TUNABLES") }
            XCTAssertEqual(Heap.threadCacheOff, off, "GLIBC_TUNABLES=\(value ?? "(unset)")")
        }
    }

    func testSidecarsGetTheTunablesAsTheyWere() {
        var env = ["GLIBC_TUNABLES": "glibc.malloc.tcache_count=0", "SWIFTLET_GLIBC_TUNABLES_BEFORE": "", "PATH": "/bin"]
        Heap.restoreThreadCacheSetting(&env)
        XCTAssertEqual(env, ["PATH": "/bin"])

        env = ["GLIBC_TUNABLES": "glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0",
               "SWIFTLET_GLIBC_TUNABLES_BEFORE": "glibc.malloc.arena_max=4"]
        Heap.restoreThreadCacheSetting(&env)
        XCTAssertEqual(env, ["GLIBC_TUNABLES": "glibc.malloc.arena_max=4"])

        // A clean environment (a sidecar run as another user) gets no GLIBC_TUNABLES it lacked.
        env = ["SWIFTLET_GLIBC_TUNABLES_BEFORE": "glibc.malloc.arena_max=4", "PATH": "/bin"]
        Heap.restoreThreadCacheSetting(&env)
        XCTAssertEqual(env, ["PATH": "/bin"])

        // The operator's own setting, untouched by the broker, is passed on as it is.
        env = ["GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"]
        Heap.restoreThreadCacheSetting(&env)
        XCTAssertEqual(env, ["GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"])
    }
}
