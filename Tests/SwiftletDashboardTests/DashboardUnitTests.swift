import Foundation
import NIOPosix
import XCTest
@testable import SwiftletDashboard

final class DashboardUnitTests: XCTestCase {
    func testSecretsAreMaskedInPluginConfig() {
        let toml = """
        [auth_mysql]
        password = "hunter2"
        password_hash = "sha256"
        # password = "in a comment stays"
        certfile = "/etc/ssl/c.pem"
        api_token = 'abc'
        password_field = "password"
        host = "db"
        """
        let m = Dashboard.masked(toml)
        XCTAssertFalse(m.contains("hunter2"))
        XCTAssertFalse(m.contains("'abc'"))
        XCTAssertTrue(m.contains("certfile = \"/etc/ssl/c.pem\""))
        XCTAssertTrue(m.contains("password_field = \"password\""))
        XCTAssertTrue(m.contains("host = \"db\""))
        XCTAssertTrue(m.contains("# password = \"in a comment stays\""))
    }

    func testLoginLimiterAllowsThePerMinuteBudgetPerAddress() {
        let l = LoginLimiter(perMinute: 5)
        for i in 0..<5 { XCTAssertNil(l.attempt(from: "a", now: 1000 + Double(i))) }
        let wait = l.attempt(from: "a", now: 1005)
        XCTAssertNotNil(wait)
        XCTAssertEqual(wait!, 55, accuracy: 0.001)
        XCTAssertNil(l.attempt(from: "b", now: 1005), "another address has its own budget")
        XCTAssertNil(l.attempt(from: "a", now: 1061), "the window slides")
    }

    func testTokensExpireAndAreRevoked() {
        let t = TokenStore(ttl: 60)
        let (token, s) = t.issue(for: "admin", now: 0)
        guard case .valid(let got) = t.lookup(token, now: 59) else { return XCTFail("valid") }
        XCTAssertEqual(got.username, "admin")
        XCTAssertEqual(got.csrf, s.csrf)
        guard case .expired = t.lookup(token, now: 61) else { return XCTFail("expired") }
        guard case .unknown = t.lookup(token, now: 62) else { return XCTFail("gone after expiry") }
        let (a, _) = t.issue(for: "x", now: 0)
        let (b, _) = t.issue(for: "x", now: 0)
        t.revokeAll(of: "x", except: b)
        guard case .unknown = t.lookup(a, now: 1), case .valid = t.lookup(b, now: 1) else { return XCTFail("revoke") }
    }

    func testAdminStoreCreatesTheDefaultAdminHashedAndForcesAChange() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dash-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let path = dir.appendingPathComponent("dashboard.json").path
        let store = AdminStore(path: path, pool: pool)
        try await store.load(defaultUsername: "admin", defaultPassword: "public")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertFalse(text.contains("public"), "only a bcrypt hash is stored")
        XCTAssertEqual(store.admin("admin")?.mustChange, true)
        let verified = await store.verify("admin", "public")
        XCTAssertNotNil(verified)
        let wrong = await store.verify("admin", "nope")
        XCTAssertNil(wrong)
        let unknown = await store.verify("nobody", "public")
        XCTAssertNil(unknown)
        try await store.setPassword("admin", "a-better-one")
        XCTAssertEqual(store.admin("admin")?.mustChange, false)
        do { try await store.setPassword("admin", "short"); XCTFail("short password accepted") } catch {}
        XCTAssertThrowsError(try store.deleteAdmin("admin"), "the last admin stays")
        let (key, secret) = try await store.addKey(name: "ci", description: "", enabled: true, expiresAt: nil)
        let ok = await store.verifyKey(key.key, secret)
        XCTAssertEqual(ok, "ci")
        let expired = try await store.addKey(name: "old", description: "", enabled: true, expiresAt: 1)
        let no = await store.verifyKey(expired.0.key, expired.1)
        XCTAssertNil(no)
        // A second store reads the same file.
        let again = AdminStore(path: path, pool: pool)
        try await again.load(defaultUsername: "admin", defaultPassword: "public")
        XCTAssertEqual(again.admin("admin")?.mustChange, false)
        XCTAssertEqual(again.apiKeys.count, 2)
        // A file that is not ours is an error, never overwritten.
        try "garbage".write(toFile: path, atomically: true, encoding: .utf8)
        do { try await AdminStore(path: path, pool: pool).load(defaultUsername: "admin", defaultPassword: "public"); XCTFail("garbage accepted") } catch {}
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "garbage")
        try await pool.shutdownGracefully()
    }
}
