import SwiftletConfig
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// `swiftlet-ctl reload config`: reads the configuration file again, applies what can change
/// while the broker runs and names what needs a restart (emqttd_reloader's role).
extension Broker {
    static let reloadUsage = "reload config"

    /// What the running broker was last configured with, for the next reload's comparison.
    final class AppliedConfig: @unchecked Sendable {
        let box: NIOLockedValueBox<BrokerConfig>
        init(_ c: BrokerConfig) { box = NIOLockedValueBox(c) }
    }

    func registerReloadCommand() {
        builtin("reload", usage: Self.reloadUsage) { b, args, loop in
            guard args == ["config"] else { return loop.reply(.usage(Self.reloadUsage)) }
            guard let path = b.configFile else {
                return loop.reply(.failure("the broker runs on its embedded defaults (no --config): nothing to reload"))
            }
            return b.threadPool.runIfActive(eventLoop: loop) { try b.reloadConfig(path: path) }
                .flatMap { r in
                    // Plugin files apply after the broker's own settings (a sidecar may depend on them).
                    b.supervisor.applyDeclarations().hop(to: loop).map { plugins in
                        var r = r
                        r.applied += plugins
                        return .done(r.text, r.json)
                    }
                }
                .recover { .failure("configuration not reloaded (nothing changed): \($0)") }
        }
    }

    struct ReloadReport {
        var applied: [String] = []
        var unchanged = true
        var needsRestart: [String] = []
        var text: String {
            var lines = ["configuration reloaded from the file"]
            lines += applied.map { "applied: \($0)" }
            if applied.isEmpty { lines.append("applied: nothing changed that applies live") }
            lines += needsRestart.map { "needs a restart: \($0)" }
            return lines.joined(separator: "\n")
        }
        var json: [String: Any] { ["applied": applied, "needs_restart": needsRestart] }
    }

    /// On the thread pool: parse (an error changes nothing), then apply section by section.
    func reloadConfig(path: String) throws -> ReloadReport {
        let new = try ConfigLoader.load(path: path)
        let old = appliedConfig.box.withLockedValue { $0 }
        var r = ReloadReport()
        // TLS certificates first: a file that does not load refuses the whole reload before
        // anything is applied. Only listeners configured as before (same files, new contents).
        let tlsListeners = new.listeners == old.listeners ? listeners.filter { $0.config.isTLS } : []
        for l in tlsListeners { _ = try ListenerTLS.load(l.config) }
        if new.logLevel != old.logLevel {
            logLevels?.level = new.logLevel
            r.applied.append("log.level \(old.logLevel) -> \(new.logLevel)")
        }
        // The ACL and users files are re-read even when the configuration did not change:
        // "reload config" after editing them is the point.
        if new.auth.aclFile == old.auth.aclFile {
            let n = try builtinAuth.reloadACL()
            r.applied.append("auth.acl_file: \(n) rule(s) from \(new.auth.aclFile ?? "(emqttd defaults)")")
        }
        if new.auth.usersFile == old.auth.usersFile, new.auth.usersFile != nil {
            let n = try builtinAuth.reloadUsers()
            r.applied.append("auth.users_file: \(n) user(s) from \(new.auth.usersFile!)")
        }
        for l in tlsListeners {
            try l.reloadTLS()
            r.applied.append("listener \(l.name): certificate and key read again (new connections)")
        }
        let dropped = auth.invalidate(.all)
        r.applied.append("auth cache: \(dropped) cached decision(s) dropped")
        r.needsRestart = Self.restartOnlyChanges(old, new)
        appliedConfig.box.withLockedValue { c in
            c.logLevel = new.logLevel
        }
        logger.info("configuration reloaded by swiftlet-ctl", metadata: [
            "config.file": "\(path)", "config.applied": "\(r.applied.joined(separator: "; "))",
            "config.needs_restart": "\(r.needsRestart.joined(separator: ", "))"])
        return r
    }

    /// The changed settings that only take effect at the next start (listeners bound, limits
    /// built into every connection's policy, the store, sockets, the dashboard).
    static func restartOnlyChanges(_ a: BrokerConfig, _ b: BrokerConfig) -> [String] {
        var out: [String] = []
        if a.nodeName != b.nodeName { out.append("node.name") }
        if a.listeners != b.listeners { out.append("listeners (certificate files with new contents apply live; other changes do not)") }
        if a.mqtt != b.mqtt { out.append("mqtt (limits are fixed when the broker starts)") }
        if a.sysInterval != b.sysInterval { out.append("sys.interval") }
        if a.persistence != b.persistence { out.append("persistence") }
        if a.auth.aclFile != b.auth.aclFile { out.append("auth.acl_file (a different file)") }
        if a.auth.usersFile != b.auth.usersFile { out.append("auth.users_file (a different file)") }
        var aa = a.auth, bb = b.auth
        (aa.aclFile, aa.usersFile, bb.aclFile, bb.usersFile) = (nil, nil, nil, nil)
        if aa != bb { out.append("auth (cache, fallback, acl_nomatch, password_hash)") }
        if a.sidecars != b.sidecars { out.append("sidecars") }
        if a.ctl != b.ctl { out.append("ctl") }
        if a.dashboard != b.dashboard { out.append("dashboard") }
        return out
    }
}
