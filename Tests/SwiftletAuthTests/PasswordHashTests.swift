import SwiftletConfig
import Foundation
import NIOCore
import NIOPosix
import XCTest
@testable import SwiftletAuth

// Password hashes of the built-in store (bcrypt, PBKDF2-SHA512) and BuiltinAuth's users file.

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

final class PasswordHashTests: XCTestCase {
    // Computed independently: Python's hashlib.pbkdf2_hmac("sha512", b"secret", b"saltsaltsaltsalt", 1000, 64).
    static let pbkdf2Vector = "pbkdf2-sha512$1000$c2FsdHNhbHRzYWx0c2FsdA==$"
        + "2IVLzDcUS76iY9+wBooZzkS5Z0mI6ikZPfMieFfR1eV/GJiiRzyvvz4ne7tBn8OJ1hxZyCz95QPNeLP3ykzMiQ=="
    // The classic bcrypt test vector (OpenBSD / John the Ripper): "U*U" at cost 5.
    static let bcryptVector = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"

    // MARK: bcrypt

    func testBcryptHashThenVerify() throws {
        let h = try PasswordHash.make("correct horse", scheme: .bcrypt, bcryptCost: 4)
        XCTAssertTrue(h.hasPrefix("$2b$04$"), h)
        XCTAssertEqual(h.count, 60)
        XCTAssertTrue(PasswordHash.verify(bytes("correct horse"), against: h))
        XCTAssertFalse(PasswordHash.verify(bytes("correct horsE"), against: h))
        XCTAssertFalse(PasswordHash.verify(bytes(""), against: h))
        XCTAssertNotEqual(try PasswordHash.make("correct horse", scheme: .bcrypt, bcryptCost: 4), h, "salted")
    }

    func testBcryptDefaultCostIsTen() throws {
        let h = try PasswordHash.make("pw")
        XCTAssertTrue(h.hasPrefix("$2b$10$"), h)
        XCTAssertTrue(PasswordHash.verify(bytes("pw"), against: h))
    }

    func testBcryptKnownVector() {
        XCTAssertTrue(PasswordHash.verify(bytes("U*U"), against: Self.bcryptVector))
        XCTAssertFalse(PasswordHash.verify(bytes("U*V"), against: Self.bcryptVector))
    }

    func testBcryptRejectsPasswordsThatAreNotUTF8() throws {
        let h = try PasswordHash.make("pw", scheme: .bcrypt, bcryptCost: 4)
        XCTAssertFalse(PasswordHash.verify([0x70, 0x77, 0xff], against: h))
    }

    // MARK: PBKDF2-SHA512

    func testPbkdf2HashThenVerify() throws {
        let h = try PasswordHash.make("s3cret", scheme: .pbkdf2_sha512)
        let parts = h.split(separator: "$")
        XCTAssertEqual(parts.count, 4, h)
        XCTAssertEqual(parts[0], "pbkdf2-sha512")
        XCTAssertEqual(Int(parts[1]), PasswordHash.pbkdf2Iterations)
        XCTAssertEqual(Data(base64Encoded: String(parts[2]))?.count, 16)
        XCTAssertEqual(Data(base64Encoded: String(parts[3]))?.count, 64)
        XCTAssertTrue(PasswordHash.verify(bytes("s3cret"), against: h))
        XCTAssertFalse(PasswordHash.verify(bytes("s3cre"), against: h))
        XCTAssertFalse(PasswordHash.verify(bytes("s3cret "), against: h))
        XCTAssertNotEqual(try PasswordHash.make("s3cret", scheme: .pbkdf2_sha512), h, "salted")
    }

    func testPbkdf2KnownVectorFromPython() {
        XCTAssertTrue(PasswordHash.verify(bytes("secret"), against: Self.pbkdf2Vector))
        XCTAssertFalse(PasswordHash.verify(bytes("Secret"), against: Self.pbkdf2Vector))
        // Same salt and hash, other iteration count: no match.
        XCTAssertFalse(PasswordHash.verify(bytes("secret"), against: Self.pbkdf2Vector.replacingOccurrences(of: "$1000$", with: "$1001$")))
    }

    func testPbkdf2ShortStoredHashIsComparedOnItsLength() {
        // The stored length decides the derived length; a truncated hash still matches its prefix.
        let full = Data(base64Encoded: String(Self.pbkdf2Vector.split(separator: "$")[3]))!
        let short = "pbkdf2-sha512$1000$c2FsdHNhbHRzYWx0c2FsdA==$\(full.prefix(32).base64EncodedString())"
        XCTAssertTrue(PasswordHash.verify(bytes("secret"), against: short))
        XCTAssertFalse(PasswordHash.verify(bytes("secreT"), against: short))
    }

    func testSchemeNames() {
        XCTAssertEqual(PasswordHash.Scheme(rawValue: "bcrypt"), .bcrypt)
        XCTAssertEqual(PasswordHash.Scheme(rawValue: "pbkdf2-sha512"), .pbkdf2_sha512)
        XCTAssertNil(PasswordHash.Scheme(rawValue: "md5"))
    }

    // MARK: malformed stored hashes

    func testMalformedHashesFailCleanly() {
        let bad = [
            "",
            "secret",                                   // a plain-text password is not a hash
            "$",
            "$2",
            "$2b$",
            "$2b$10$",
            "$2b$10$tooshort",
            "$2b$xx$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2b$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2b$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2z$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2a$05$!!!!!!!!!!!!!!!!!!!!!!E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeWextra",
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",
            "pbkdf2-sha512",
            "pbkdf2-sha512$",
            "pbkdf2-sha512$1000",
            "pbkdf2-sha512$1000$c2FsdA==",
            "pbkdf2-sha512$1000$c2FsdA==$",            // empty hash
            "pbkdf2-sha512$1000$$AAAA",                // empty salt field
            "pbkdf2-sha512$abc$c2FsdA==$AAAA",
            "pbkdf2-sha512$0$c2FsdA==$AAAA",
            "pbkdf2-sha512$-1000$c2FsdA==$AAAA",
            "pbkdf2-sha512$99999999999$c2FsdA==$AAAA",  // over the 10 000 000 rounds cap
            "pbkdf2-sha512$99999999999999999999999$c2FsdA==$AAAA",
            "pbkdf2-sha512$1000$not base64!$AAAA",
            "pbkdf2-sha512$1000$c2FsdA==$not base64!",
            "pbkdf2-sha512$1000$c2FsdA==$AAAA$extra",
            "pbkdf2-sha256$1000$c2FsdA==$AAAA",
            "PBKDF2-SHA512$1000$c2FsdHNhbHRzYWx0c2FsdA==$2IVLzDcU",
            "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
            String(repeating: "$", count: 10_000),
            "pbkdf2-sha512$1000$" + String(repeating: "A", count: 100_000) + "$AAAA",
        ]
        for h in bad {
            XCTAssertFalse(PasswordHash.verify(bytes("secret"), against: h), "matched malformed hash \(h.prefix(80))")
            XCTAssertFalse(PasswordHash.verify([], against: h), "empty password matched \(h.prefix(80))")
        }
        // Sanity: the well-formed versions do match.
        XCTAssertTrue(PasswordHash.verify(bytes("secret"), against: Self.pbkdf2Vector))
    }

    // MARK: BuiltinAuth users file

    // Password checks complete on the pool's thread, so these tests use a real event loop.
    private var pool: NIOThreadPool!
    private var group: MultiThreadedEventLoopGroup!
    private var dir: URL!

    override func setUpWithError() throws {
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-users-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        try? FileManager.default.removeItem(at: dir)
    }

    private func authenticate(_ b: BuiltinAuth, _ user: String?, _ password: String?) throws -> ProviderDecision {
        try b.authenticate(ClientInfo(clientId: "c", username: user, peerAddress: "127.0.0.1"),
                           password: password.map(bytes), on: group.next()).wait().decision
    }

    func testBuiltinUsersAuthenticate() throws {
        let path = dir.appendingPathComponent("users.toml").path
        let bcrypt = try PasswordHash.make("bpw", scheme: .bcrypt, bcryptCost: 4)
        try """
        [users.alice]
        password = "\(Self.pbkdf2Vector)"

        [users.root]
        password = "\(bcrypt)"
        superuser = true

        [users.broken]
        password = "pbkdf2-sha512$garbage"
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let b = BuiltinAuth(usersPath: path, aclPath: nil, order: 1000, pool: pool)
        XCTAssertEqual(try b.reloadUsers(), 3)
        XCTAssertEqual(b.users["alice"], BuiltinUser(passwordHash: Self.pbkdf2Vector, superuser: false))

        XCTAssertEqual(try authenticate(b, "alice", "secret"), .allow(superuser: false))
        XCTAssertEqual(try authenticate(b, "alice", "wrong"), .deny(reason: "bad password"))
        XCTAssertEqual(try authenticate(b, "alice", nil), .deny(reason: "no password"))
        XCTAssertEqual(try authenticate(b, "root", "bpw"), .allow(superuser: true))
        XCTAssertEqual(try authenticate(b, "broken", "secret"), .deny(reason: "bad password"))
        XCTAssertEqual(try authenticate(b, "nobody", "secret"), .ignore, "unknown users are left to the next provider")
        XCTAssertEqual(try authenticate(b, nil, nil), .ignore)
    }

    func testUsersFileRoundTripThroughSetAndDelete() throws {
        let path = dir.appendingPathComponent("users.toml").path
        let b = BuiltinAuth(usersPath: path, aclPath: nil, order: 1000, pool: pool)
        XCTAssertEqual(try b.reloadUsers(), 0, "a missing users file is an empty store")
        try b.setUser("we\"ird name", password: "p1", superuser: true, scheme: .pbkdf2_sha512)
        try b.setUser("bob", password: "p2", superuser: false, scheme: .bcrypt)
        let reread = BuiltinAuth(usersPath: path, aclPath: nil, order: 1000, pool: pool)
        XCTAssertEqual(try reread.reloadUsers(), 2)
        XCTAssertEqual(reread.users["we\"ird name"]?.superuser, true)
        XCTAssertEqual(try authenticate(reread, "we\"ird name", "p1"), .allow(superuser: true))
        XCTAssertEqual(try authenticate(reread, "bob", "p2"), .allow(superuser: false))
        XCTAssertTrue(try b.deleteUser("bob"))
        XCTAssertFalse(try b.deleteUser("bob"))
        XCTAssertEqual(try reread.reloadUsers(), 1)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600, "the users file holds hashes: owner only")
    }

    func testUsersFileErrorsNameTheKey() throws {
        let path = dir.appendingPathComponent("users.toml").path
        try "[users.carol]\nsuperuser = true\n".write(toFile: path, atomically: true, encoding: .utf8)
        let b = BuiltinAuth(usersPath: path, aclPath: nil, order: 1000, pool: pool)
        XCTAssertThrowsError(try b.reloadUsers()) { e in
            XCTAssertEqual((e as? ConfigError)?.key, "users.carol.password")
        }
        XCTAssertThrowsError(try BuiltinAuth(usersPath: nil, aclPath: nil, order: 1, pool: pool)
            .setUser("x", password: "y", superuser: false, scheme: .bcrypt)) { e in
            XCTAssertEqual((e as? ConfigError)?.key, "auth.users_file")
        }
    }
}

/// Inputs that made toml++ abort (Fuzz/fuzz-config) are configuration errors in every file the
/// broker reads, the built-in users and ACL files included.
final class BuiltinFilesPreflightTests: XCTestCase {
    func testMalformedUsersAndACLFilesAreErrorsNotAborts() throws {
        for text in ["[=]\n", "a = [ }\n", "a = 1978-05-27Tx:00\n", "[users.a]\npassword = \"x\"\n[[[1]]]\n"] {
            let path = NSTemporaryDirectory() + "swiftlet-preflight-\(UUID().uuidString).toml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try BuiltinAuth.loadUsers(path)) { XCTAssertTrue($0 is ConfigError, "\($0)") }
            XCTAssertThrowsError(try BuiltinAuth.loadRules(path)) { XCTAssertTrue($0 is ConfigError, "\($0)") }
        }
    }
}
