import SwiftletConfig
import _CryptoExtras
import Crypto
import Foundation
import HummingbirdBcrypt

/// Password hashes of the built-in user store: bcrypt (`$2b$...`, hummingbird-auth) or
/// PBKDF2-SHA512 (`pbkdf2-sha512$<iterations>$<salt b64>$<hash b64>`, swift-crypto).
/// Verification is slow on purpose: callers run it off the event loops.
public enum PasswordHash {
    public typealias Scheme = PasswordScheme

    public static let pbkdf2Iterations = 210_000

    public static func make(_ password: String, scheme: Scheme = .bcrypt, bcryptCost: UInt8 = 10) throws -> String {
        switch scheme {
        case .bcrypt:
            return Bcrypt.hash(password, cost: bcryptCost)
        case .pbkdf2_sha512:
            var salt = [UInt8](repeating: 0, count: 16)
            for i in salt.indices { salt[i] = UInt8.random(in: 0...255) }
            let key = try KDF.Insecure.PBKDF2.deriveKey(from: Array(password.utf8), salt: salt, using: .sha512,
                                                         outputByteCount: 64, rounds: pbkdf2Iterations)
            let hash = key.withUnsafeBytes { Data($0) }
            return "pbkdf2-sha512$\(pbkdf2Iterations)$\(Data(salt).base64EncodedString())$\(hash.base64EncodedString())"
        }
    }

    /// True when `password` matches `stored`. Unknown formats never match.
    public static func verify(_ password: [UInt8], against stored: String) -> Bool {
        if stored.hasPrefix("$2") {
            guard let text = String(validating: password, as: UTF8.self) else { return false }
            return Bcrypt.verify(text, hash: stored)
        }
        let parts = stored.split(separator: "$")
        if parts.count == 4, parts[0] == "pbkdf2-sha512", let rounds = Int(parts[1]), rounds > 0, rounds <= 10_000_000,
           let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])),
           !expected.isEmpty {
            guard let key = try? KDF.Insecure.PBKDF2.deriveKey(from: password, salt: salt, using: .sha512,
                                                                outputByteCount: expected.count, unsafeUncheckedRounds: rounds)
            else { return false }
            let got = key.withUnsafeBytes { Data($0) }
            return constantTimeEqual(Array(got), Array(expected))
        }
        return false
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
