import Foundation
import NIOCore

/// `users add <name> <password> [--superuser] | del <name> | passwd <name> <password> | list`:
/// the built-in users file (`[auth] users_file`), written atomically, hashed off the loops.
extension Broker {
    static let usersUsage = "users list\nusers add <username> <password> [--superuser]\nusers del <username>\nusers passwd <username> <password>"

    func registerUserCommands() {
        builtin("users", usage: Self.usersUsage) { b, args, loop in
            switch (args.first, args.count) {
            case ("list", 1): return loop.reply(b.usersList())
            case ("add", 3): return b.usersSet(args[1], password: args[2], superuser: false, adding: true, loop)
            case ("add", 4) where args[3] == "--superuser": return b.usersSet(args[1], password: args[2], superuser: true, adding: true, loop)
            case ("passwd", 3): return b.usersSet(args[1], password: args[2], superuser: nil, adding: false, loop)
            case ("del", 2): return b.usersDel(args[1], loop)
            default: return loop.reply(.usage(Self.usersUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
    }

    private func usersList() -> ControlReply {
        let users = builtinAuth.users.sorted { $0.key < $1.key }
        func scheme(_ h: String) -> String { h.hasPrefix("$2") ? "bcrypt" : h.hasPrefix("pbkdf2-sha512$") ? "pbkdf2-sha512" : "unknown" }
        let text = TextTable.render(["USERNAME", "SUPERUSER", "HASH"], users.map { [TextTable.cell($0.key), $0.value.superuser ? "yes" : "no", scheme($0.value.passwordHash)] })
            + "\n\(users.count) user(s) in \(config.auth.usersFile ?? "(no users_file configured)")"
        return .done(text, users.map { ["username": $0.key, "superuser": $0.value.superuser, "hash": scheme($0.value.passwordHash)] })
    }

    /// Adds a user (`adding`) or changes a password (`superuser` nil: keep the flag).
    private func usersSet(_ name: String, password: String, superuser: Bool?, adding: Bool, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        guard let path = config.auth.usersFile else { return loop.reply(.failure("no users file is configured ([auth] users_file)")) }
        guard !name.isEmpty, !password.isEmpty else { return loop.reply(.failure("username and password must not be empty")) }
        let existing = builtinAuth.users[name]
        if adding, existing != nil { return loop.reply(.failure("user \(name) exists (use: users passwd \(name) <password>)")) }
        if !adding, existing == nil { return loop.reply(.failure("no user \(name)")) }
        let su = superuser ?? existing?.superuser ?? false
        let scheme = config.auth.passwordScheme
        let auth = builtinAuth
        return threadPool.runIfActive(eventLoop: loop) { () -> Int in
            try Self.ensureUsersFile(path)
            try auth.setUser(name, password: password, superuser: su, scheme: scheme)
            return try auth.reloadUsers()
        }.map { count in
            let dropped = self.auth.invalidate(.username(name))
            self.logger.info(adding ? "user added by swiftlet-ctl" : "password changed by swiftlet-ctl",
                             metadata: ["auth.username": "\(name)", "auth.users": "\(count)", "auth.cache_dropped": "\(dropped)"])
            let what = adding ? "user \(name) added\(su ? " (superuser)" : "")" : "password of \(name) changed"
            return .done(what, ["username": name, "superuser": su, "users": count])
        }.recover { .failure("users file not changed: \($0)") }
    }

    private func usersDel(_ name: String, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        guard config.auth.usersFile != nil else { return loop.reply(.failure("no users file is configured ([auth] users_file)")) }
        let auth = builtinAuth
        return threadPool.runIfActive(eventLoop: loop) { () -> (Bool, Int) in
            let removed = try auth.deleteUser(name)
            return (removed, try auth.reloadUsers())
        }.map { removed, count in
            guard removed else { return .failure("no user \(name)") }
            let dropped = self.auth.invalidate(.username(name))
            self.logger.info("user deleted by swiftlet-ctl", metadata: ["auth.username": "\(name)", "auth.users": "\(count)",
                                                                       "auth.cache_dropped": "\(dropped)"])
            return .done("user \(name) deleted", ["username": name, "users": count])
        }.recover { .failure("users file not changed: \($0)") }
    }

    /// The atomic replace needs an existing file (and folder) to replace.
    static func ensureUsersFile(_ path: String) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: path) else { return }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        guard fm.createFile(atPath: path, contents: Data(), attributes: [.posixPermissions: 0o600]) else {
            throw ControlWireError("cannot create \(path)")
        }
    }
}
