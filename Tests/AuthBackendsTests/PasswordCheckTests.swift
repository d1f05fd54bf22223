import AuthBackends
import XCTest

// Vectors computed with Python's hashlib for password "secret", salt "salty".
final class PasswordCheckTests: XCTestCase {
    let pw = Array("secret".utf8)

    func check(_ tokens: [PasswordCheck.Token]) throws -> PasswordCheck { try PasswordCheck(tokens: tokens) }

    func testDigestsWithoutSalt() throws {
        let vectors: [(String, String)] = [
            ("plain", "secret"),
            ("md5", "5ebe2294ecd0e0f08eab7690d2a6ee69"),
            ("sha", "e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"),
            ("sha256", "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"),
            ("sha512", "bd2b1aaf7ef4f09be9f52ce2d8d599674d81aa9d6a4421696dc4d93dd0619d682ce56b4d64a9ef097761ced99e0f67265b5f76085e5b0ee7ca4696b2ad6fe2b2"),
        ]
        for (name, stored) in vectors {
            let c = try check([.word(name)])
            XCTAssertTrue(c.verify(pw, stored: stored, salt: nil), name)
            XCTAssertTrue(c.verify(pw, stored: stored, salt: "ignored"), "\(name): no salt in the scheme")
            XCTAssertFalse(c.verify(Array("secreT".utf8), stored: stored, salt: nil), name)
            XCTAssertFalse(c.verify([], stored: stored, salt: nil), name)
            XCTAssertEqual(c.make(pw, salt: nil), stored, name)
            if name != "plain" {
                XCTAssertTrue(c.verify(pw, stored: stored.uppercased(), salt: nil), "\(name): hex in either case")
            }
        }
        XCTAssertFalse(try check(["plain"]).verify(pw, stored: "SECRET", salt: nil), "plain is exact")
    }

    func testSaltPrefixAndSuffix() throws {
        let vectors: [(String, String, String)] = [
            ("md5", "428eb95fd308bc729d6f6621550e4625", "a9828f69306c59cb1451f25b427b72ce"),
            ("sha", "c9f28e04751363222fe3c00957ecf41d7566b403", "5200898ccf9524961dba2843ba4d1a3e90ed63d4"),
            ("sha256", "851a0c42efcc10ae616f812c3d54b05bb61838c84a01b9a01292c1fba5e6aed0",
             "5b64f41ad31f4fd9aacf633a336ba0b7b0b81f169c2c456fdc91e8a825352d7a"),
            ("sha512", "3cea0344defa16d698502cdbb015f8246f97e56dfdf63618275e203b4e9800540182065f8d5d563f975e438835dc02c232a690995eecb89276e1c4507cf043c6",
             "7116556b06b0ae3c44cb115103921039fa094798b10c3182db5027dbf482a9de20d2eafe5030ca51e00d7b004d13a450697a843d78d55aa66ef179b2fd853757"),
        ]
        for (name, prefix, suffix) in vectors {
            let p = try check(["salt", .word(name)])
            let s = try check([.word(name), "salt"])
            XCTAssertEqual(p.scheme, .digest(PasswordCheck.Digest(rawValue: name)!, salt: .prefix))
            XCTAssertTrue(p.verify(pw, stored: prefix, salt: "salty"), name)
            XCTAssertFalse(p.verify(pw, stored: prefix, salt: "salt"), name)
            XCTAssertFalse(p.verify(pw, stored: suffix, salt: "salty"), "\(name): suffix hash under prefix scheme")
            XCTAssertTrue(s.verify(pw, stored: suffix, salt: "salty"), name)
            XCTAssertFalse(s.verify(Array("secrex".utf8), stored: suffix, salt: "salty"), name)
        }
        XCTAssertTrue(try check(["salt", "plain"]).verify(pw, stored: "saltysecret", salt: "salty"))
    }

    func testPBKDF2() throws {
        let c = try check(["pbkdf2", "sha256", 1000, 20])
        XCTAssertEqual(c.scheme, .pbkdf2(.sha256, iterations: 1000, keyLength: 20))
        XCTAssertTrue(c.verify(pw, stored: "8a606f25b1cd20f1b639e996fa58d38d8b99a67c", salt: "salty"))
        XCTAssertFalse(c.verify(pw, stored: "8a606f25b1cd20f1b639e996fa58d38d8b99a67c", salt: "salt"))
        XCTAssertFalse(c.verify(Array("Secret".utf8), stored: "8a606f25b1cd20f1b639e996fa58d38d8b99a67c", salt: "salty"))
        let sha1 = try check(["pbkdf2", "sha", 10, 32])
        XCTAssertTrue(sha1.verify(pw, stored: "cfec32ad01a6ad3f64822a45c34ca80c2ce4c2a7218c0d8a3f84f8fdccb238ca", salt: "salty"))
    }

    func testBcrypt() throws {
        let c = try check(["bcrypt"])
        // The classic test vector: password "U*U", cost 5.
        let v = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
        XCTAssertTrue(c.verify(Array("U*U".utf8), stored: v, salt: nil))
        XCTAssertTrue(c.verify(Array("U*U".utf8), stored: "$2b$" + v.dropFirst(4), salt: nil))
        XCTAssertTrue(c.verify(Array("U*U".utf8), stored: "$2y$" + v.dropFirst(4), salt: nil), "PHP's $2y$")
        XCTAssertFalse(c.verify(Array("U*V".utf8), stored: v, salt: nil))
        XCTAssertFalse(c.verify(Array("U*U\u{0}x".utf8), stored: v, salt: nil), "a NUL never reaches C")
        XCTAssertFalse(c.verify([0xff, 0xfe], stored: v, salt: nil))
        XCTAssertFalse(c.verify(Array("U*U".utf8), stored: "$2x$" + v.dropFirst(4), salt: nil))
        XCTAssertFalse(c.usesSalt)
    }

    func testNullOrEmptyStoredNeverMatches() throws {
        for t: [PasswordCheck.Token] in [["plain"], ["sha256"], ["bcrypt"], ["pbkdf2", "sha256", 1, 20]] {
            XCTAssertFalse(try check(t).verify([], stored: nil, salt: nil))
            XCTAssertFalse(try check(t).verify([], stored: "", salt: nil))
        }
    }

    func testOptionForms() throws {
        XCTAssertEqual(try check(["SHA256"]).scheme, .digest(.sha256, salt: .none))
        XCTAssertEqual(try check(["sha256", "salt"]).scheme, .digest(.sha256, salt: .suffix))
        XCTAssertEqual(try check(["bcrypt"]).scheme, .bcrypt)
        for bad: [PasswordCheck.Token] in [[], ["sha1"], ["pbkdf2"], ["salt", "salt"], ["salt", "bcrypt"], [1],
                                           ["pbkdf2", "sha256", 0, 20], ["pbkdf2", "sha256", 1000, 0],
                                           ["pbkdf2", "whirlpool", 1000, 20], ["pbkdf2", "sha256", "1000", 20],
                                           ["sha256", "salt", "x"]] {
            XCTAssertThrowsError(try check(bad), "\(bad)")
        }
        XCTAssertEqual(PasswordCheck.emqttdDefault.description, "sha256")
    }
}
