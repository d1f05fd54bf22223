import Foundation
import HummingbirdBcrypt
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Dashboard admins and API keys, kept in one JSON file (`[dashboard] admins_file`, default
/// `<data_dir>/dashboard.json`, mode 0600, written atomically). Passwords and API secrets are
/// stored as bcrypt hashes only; hashing runs on a thread pool, never on an event loop.
///
/// On first start (no file) the seed's default admin (`admin`/`public`) is created with
/// `mustChange` set: until its password changes, the API answers 403 PASSWORD_CHANGE_REQUIRED.
final class AdminStore: @unchecked Sendable {
    struct Admin: Codable, Equatable, Sendable {
        var username: String
        var passwordHash: String
        var description: String
        var mustChange: Bool
        var createdAt: Double
    }

    struct APIKey: Codable, Equatable, Sendable {
        var name: String
        var key: String
        var secretHash: String
        var description: String
        var enabled: Bool
        var createdAt: Double
        /// Seconds since 1970; nil: never expires.
        var expiresAt: Double?
    }

    private struct File: Codable {
        var admins: [Admin]
        var apiKeys: [APIKey]
    }

    enum StoreError: Error, CustomStringConvertible {
        case exists(String), notFound(String), invalid(String), lastAdmin
        var description: String {
            switch self {
            case .exists(let s): return "\(s) already exists"
            case .notFound(let s): return "\(s) not found"
            case .invalid(let s): return s
            case .lastAdmin: return "the last admin cannot be deleted"
            }
        }
    }

    static let bcryptCost: UInt8 = 10
    let path: String
    private let lock = NIOLock()
    private var file = File(admins: [], apiKeys: [])
    let pool: NIOThreadPool

    init(path: String, pool: NIOThreadPool) {
        self.path = path
        self.pool = pool
    }

    /// Reads the file, or creates it with the default admin.
    func load(defaultUsername: String, defaultPassword: String) async throws {
        if let data = FileManager.default.contents(atPath: path) {
            do {
                let f = try JSONDecoder().decode(File.self, from: data)
                lock.withLock { file = f }
                return
            } catch {
                throw StoreError.invalid("\(path): not a dashboard admins file (\(error)); move it away to start over")
            }
        }
        let hash = try await hashed(defaultPassword)
        let admin = Admin(username: defaultUsername, passwordHash: hash, description: "default administrator",
                          mustChange: true, createdAt: Date().timeIntervalSince1970)
        try change { $0.admins = [admin] }
    }

    var admins: [Admin] { lock.withLock { file.admins } }
    var apiKeys: [APIKey] { lock.withLock { file.apiKeys } }
    func admin(_ name: String) -> Admin? { lock.withLock { file.admins.first { $0.username == name } } }

    // MARK: Checks

    /// The admin when `password` is right; nil otherwise (also for an unknown name, after
    /// the same bcrypt work, so timing does not tell names apart).
    func verify(_ username: String, _ password: String) async -> Admin? {
        let a = admin(username)
        let hash = a?.passwordHash ?? Self.dummyHash
        let ok = (try? await pool.runIfActive { Bcrypt.verify(password, hash: hash) }) ?? false
        return ok ? a : nil
    }

    /// The key's name when `key`/`secret` are right, enabled and not expired.
    func verifyKey(_ key: String, _ secret: String, now: Double = Date().timeIntervalSince1970) async -> String? {
        let k = lock.withLock { file.apiKeys.first { $0.key == key } }
        let hash = k?.secretHash ?? Self.dummyHash
        let ok = (try? await pool.runIfActive { Bcrypt.verify(secret, hash: hash) }) ?? false
        guard ok, let k, k.enabled, k.expiresAt.map({ $0 > now }) ?? true else { return nil }
        return k.name
    }

    /// A bcrypt hash of a random string: what an unknown name is checked against.
    private static let dummyHash = Bcrypt.hash(UUID().uuidString, cost: bcryptCost)

    // MARK: Changes

    static func validate(username: String) throws {
        guard !username.isEmpty, username.utf8.count <= 64,
              username.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.@".unicodeScalars.contains($0) }) else {
            throw StoreError.invalid("a username is 1 to 64 letters, digits, '-', '_', '.' or '@'")
        }
    }

    static func validate(password: String) throws {
        guard password.count >= 8, password.utf8.count <= 72 else {
            throw StoreError.invalid("a password is 8 to 72 bytes (bcrypt's limit) long")
        }
    }

    func addAdmin(_ username: String, password: String, description: String) async throws {
        try Self.validate(username: username)
        try Self.validate(password: password)
        let hash = try await hashed(password)
        try change { f in
            guard !f.admins.contains(where: { $0.username == username }) else { throw StoreError.exists("admin \(username)") }
            f.admins.append(Admin(username: username, passwordHash: hash, description: description, mustChange: false,
                                  createdAt: Date().timeIntervalSince1970))
        }
    }

    func setPassword(_ username: String, _ password: String) async throws {
        try Self.validate(password: password)
        let hash = try await hashed(password)
        try change { f in
            guard let i = f.admins.firstIndex(where: { $0.username == username }) else { throw StoreError.notFound("admin \(username)") }
            f.admins[i].passwordHash = hash
            f.admins[i].mustChange = false
        }
    }

    func deleteAdmin(_ username: String) throws {
        try change { f in
            guard let i = f.admins.firstIndex(where: { $0.username == username }) else { throw StoreError.notFound("admin \(username)") }
            guard f.admins.count > 1 else { throw StoreError.lastAdmin }
            f.admins.remove(at: i)
        }
    }

    /// A new API key; answers the key and its secret (shown once).
    func addKey(name: String, description: String, enabled: Bool, expiresAt: Double?) async throws -> (APIKey, String) {
        try Self.validate(username: name)
        let key = Self.randomToken(8)
        let secret = Self.randomToken(24)
        let hash = try await hashed(secret)
        let k = APIKey(name: name, key: key, secretHash: hash, description: description, enabled: enabled,
                       createdAt: Date().timeIntervalSince1970, expiresAt: expiresAt)
        try change { f in
            guard !f.apiKeys.contains(where: { $0.name == name }) else { throw StoreError.exists("API key \(name)") }
            f.apiKeys.append(k)
        }
        return (k, secret)
    }

    func deleteKey(_ name: String) throws {
        try change { f in
            guard let i = f.apiKeys.firstIndex(where: { $0.name == name }) else { throw StoreError.notFound("API key \(name)") }
            f.apiKeys.remove(at: i)
        }
    }

    private func hashed(_ secret: String) async throws -> String {
        try await pool.runIfActive { Bcrypt.hash(secret, cost: Self.bcryptCost) }
    }

    /// Applies a change and writes the file; on any error nothing changes.
    private func change(_ body: (inout File) throws -> Void) throws {
        try lock.withLock {
            var next = file
            try body(&next)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try enc.encode(next)
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let old = umask(0o077)
            defer { umask(old) }
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
            chmod(path, 0o600)
            file = next
        }
    }

    /// Hex of `bytes` random bytes from the system's generator.
    static func randomToken(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }
}
