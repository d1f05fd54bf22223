import _CryptoExtras
import Crypto
import HummingbirdBcrypt
import NIOPosix

/// emqttd's `password_hash`: how the stored password was made, and the check of a
/// CONNECT's password against it. Cryptography is swift-crypto's (digests, PBKDF2) and
/// hummingbird-auth's (bcrypt); checks compare in constant time.
///
/// | form in TOML                       | stored value                                        |
/// |------------------------------------|-----------------------------------------------------|
/// | `"plain"`                          | the password itself                                 |
/// | `"md5"` `"sha"` `"sha256"` `"sha512"` | lowercase hex of the digest of the password      |
/// | `["salt", "sha256"]`               | hex digest of salt + password (salt prefix)         |
/// | `["sha256", "salt"]`               | hex digest of password + salt (salt suffix)         |
/// | `["pbkdf2", "sha256", 1000, 20]`   | hex of PBKDF2(digest, password, salt, iterations, derived key length) |
/// | `"bcrypt"`                         | the whole `$2a$`/`$2b$`/`$2y$` hash; no salt column |
public struct PasswordCheck: Sendable, Equatable, CustomStringConvertible {
    public enum Digest: String, Sendable, Equatable, CaseIterable {
        case plain, md5, sha, sha256, sha512
    }

    public enum PBKDF2Digest: String, Sendable, Equatable, CaseIterable {
        case md5, sha, sha224, sha256, sha384, sha512
    }

    public enum SaltPosition: Sendable, Equatable {
        case none, prefix, suffix
    }

    public enum Scheme: Sendable, Equatable {
        case digest(Digest, salt: SaltPosition)
        case pbkdf2(PBKDF2Digest, iterations: Int, keyLength: Int)
        case bcrypt
    }

    public var scheme: Scheme

    public init(_ scheme: Scheme) { self.scheme = scheme }

    /// emqttd's default: sha256, no salt.
    public static let emqttdDefault = PasswordCheck(.digest(.sha256, salt: .none))

    /// Largest iteration count accepted from configuration (a check runs per CONNECT).
    public static let maxIterations = 10_000_000

    /// True when the scheme uses the salt column.
    public var usesSalt: Bool {
        switch scheme {
        case .digest(_, let s): return s != .none
        case .pbkdf2: return true
        case .bcrypt: return false
        }
    }

    /// True when `password` matches `stored` (with `salt`, the salt column's text, when the
    /// scheme uses one; nil is the empty salt). A NULL or empty stored value never matches.
    public func verify(_ password: [UInt8], stored: String?, salt: String?) -> Bool {
        guard let stored, !stored.isEmpty else { return false }
        switch scheme {
        case .bcrypt:
            guard !password.contains(0), let text = String(validating: password, as: UTF8.self) else { return false }
            var hash = stored
            // $2y$ (PHP's crypt) is the same algorithm as $2b$; OpenBSD's checker knows only a/b.
            if hash.hasPrefix("$2y$") { hash = "$2b$" + hash.dropFirst(4) }
            guard hash.hasPrefix("$2a$") || hash.hasPrefix("$2b$") else { return false }
            return Bcrypt.verify(text, hash: hash)
        case .digest(.plain, _):
            guard let expected = make(password, salt: salt) else { return false }
            return Self.constantTimeEqual(Array(expected.utf8), Array(stored.utf8))
        default:
            guard let expected = make(password, salt: salt) else { return false }
            return Self.constantTimeEqual(Array(expected.utf8), Array(stored.lowercased().utf8))
        }
    }

    /// `verify` for a request handler: bcrypt and PBKDF2, slow on purpose, run on NIO's
    /// blocking thread pool instead of a cooperative thread; digests run right here.
    public func verifyOffloaded(_ password: [UInt8], stored: String?, salt: String?) async -> Bool {
        guard isSlow else { return verify(password, stored: stored, salt: salt) }
        let check = self
        return (try? await NIOThreadPool.singleton.runIfActive { check.verify(password, stored: stored, salt: salt) }) ?? false
    }

    /// bcrypt and PBKDF2: expensive by design (cost, iterations).
    public var isSlow: Bool {
        if case .digest = scheme { return false }
        return true
    }

    /// The value emqttd stored for `password` and `salt` (lowercase hex for digests and
    /// PBKDF2); nil for bcrypt (use `Bcrypt.hash`) and when PBKDF2 fails.
    public func make(_ password: [UInt8], salt: String?) -> String? {
        let salt = Array((salt ?? "").utf8)
        switch scheme {
        case .bcrypt:
            return nil
        case .digest(let d, let position):
            var input: [UInt8]
            switch position {
            case .none: input = password
            case .prefix: input = salt + password
            case .suffix: input = password + salt
            }
            switch d {
            case .plain: return String(decoding: input, as: UTF8.self)
            case .md5: return Self.hex(Insecure.MD5.hash(data: input))
            case .sha: return Self.hex(Insecure.SHA1.hash(data: input))
            case .sha256: return Self.hex(SHA256.hash(data: input))
            case .sha512: return Self.hex(SHA512.hash(data: input))
            }
        case .pbkdf2(let d, let iterations, let keyLength):
            let f: KDF.Insecure.PBKDF2.HashFunction
            switch d {
            case .md5: f = .insecureMD5
            case .sha: f = .insecureSHA1
            case .sha224: f = .insecureSHA224
            case .sha256: f = .sha256
            case .sha384: f = .sha384
            case .sha512: f = .sha512
            }
            guard let key = try? KDF.Insecure.PBKDF2.deriveKey(from: password, salt: salt, using: f,
                                                                outputByteCount: keyLength,
                                                                unsafeUncheckedRounds: iterations)
            else { return nil }
            return key.withUnsafeBytes { Self.hex($0) }
        }
    }

    /// Lowercase hex of `bytes` (also the broker's auth cache key for a password digest).
    public static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    public var description: String {
        switch scheme {
        case .bcrypt: return "bcrypt"
        case .digest(let d, .none): return d.rawValue
        case .digest(let d, .prefix): return "salt+\(d.rawValue)"
        case .digest(let d, .suffix): return "\(d.rawValue)+salt"
        case .pbkdf2(let d, let i, let l): return "pbkdf2(\(d.rawValue), \(i), \(l))"
        }
    }
}

extension PasswordCheck {
    /// One element of the `password_hash` option: a word or a number.
    public enum Token: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
        case word(String)
        case number(Int)
        public init(stringLiteral value: String) { self = .word(value) }
        public init(integerLiteral value: Int) { self = .number(value) }
    }

    /// Parses `password_hash` as written in a plugin file: `"sha256"` (one token),
    /// `["salt", "sha256"]`, `["sha256", "salt"]`, `["pbkdf2", "sha256", 1000, 20]`,
    /// `"bcrypt"`. Throws a message naming what is wrong.
    public init(tokens: [Token]) throws(ConfigProblem) {
        func word(_ t: Token) -> String? { if case .word(let w) = t { return w.lowercased() } else { return nil } }
        let words = tokens.map(word)
        switch tokens.count {
        case 1:
            if words[0] == "bcrypt" { self.init(.bcrypt); return }
            if words[0] == "pbkdf2" { throw ConfigProblem("pbkdf2 needs its parameters: [\"pbkdf2\", \"sha256\", 1000, 20]") }
            guard let w = words[0], let d = Digest(rawValue: w) else { throw Self.unknown(tokens) }
            self.init(.digest(d, salt: .none))
        case 2:
            if words[0] == "salt", let w = words[1], let d = Digest(rawValue: w) {
                self.init(.digest(d, salt: .prefix))
            } else if words[1] == "salt", let w = words[0], let d = Digest(rawValue: w) {
                self.init(.digest(d, salt: .suffix))
            } else {
                throw Self.unknown(tokens)
            }
        case 4:
            guard words[0] == "pbkdf2", let w = words[1], let d = PBKDF2Digest(rawValue: w),
                  case .number(let iterations) = tokens[2], case .number(let length) = tokens[3]
            else { throw Self.unknown(tokens) }
            guard (1...Self.maxIterations).contains(iterations) else {
                throw ConfigProblem("pbkdf2 iterations must be 1...\(Self.maxIterations)")
            }
            guard (1...1024).contains(length) else { throw ConfigProblem("pbkdf2 derived key length must be 1...1024 bytes") }
            self.init(.pbkdf2(d, iterations: iterations, keyLength: length))
        default:
            throw Self.unknown(tokens)
        }
    }

    private static func unknown(_ tokens: [Token]) -> ConfigProblem {
        ConfigProblem("must be one of \"plain\", \"md5\", \"sha\", \"sha256\", \"sha512\", [\"salt\", \"sha256\"] "
            + "(salt prefix), [\"sha256\", \"salt\"] (salt suffix), [\"pbkdf2\", \"sha256\", 1000, 20], \"bcrypt\"")
    }
}

/// A configuration value that is wrong, with a message for the user; the caller names the key.
public struct ConfigProblem: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
