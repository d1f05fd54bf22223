import SwiftletConfig
import Atomics
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

    /// On the thread pool. First every check (the file parses, certificates, ACL, users and
    /// plugin files load), then, only when all passed, every change: a failed reload changes
    /// nothing and its error says why.
    func reloadConfig(path: String) throws -> ReloadReport {
        // 1. Check. Everything that can fail is read here and kept for step 2.
        let new = try ConfigLoader.load(path: path)
        let old = appliedConfig.box.withLockedValue { $0 }
        let plan = ReloadPlan(running: old, file: new)
        let running = listeners
        let tls = try running.filter { plan.tlsListeners.contains($0.name) }.map { ($0, try ListenerTLS.load($0.config)) }
        // The ACL and users files are read again even when the configuration did not change:
        // "reload config" after editing them is the point.
        let rules = try new.auth.aclFile == old.auth.aclFile ? builtinAuth.readACL() : nil
        let users = try new.auth.usersFile == old.auth.usersFile && new.auth.usersFile != nil ? builtinAuth.readUsers() : nil
        try supervisor.checkDeclarations()

        // 2. Apply. Nothing below fails.
        var r = ReloadReport()
        if let level = plan.logLevel {
            logLevels?.level = level
            r.applied.append("log.level \(old.logLevel) -> \(level)")
        }
        if let rules {
            builtinAuth.install(rules: rules)
            r.applied.append("auth.acl_file: \(rules.count) rule(s) from \(new.auth.aclFile ?? "(emqttd defaults)")")
        }
        if let users {
            builtinAuth.install(users: users)
            r.applied.append("auth.users_file: \(users.count) user(s) from \(new.auth.usersFile!)")
        }
        for (l, loaded) in tls {
            l.install(loaded)
            r.applied.append("listener \(l.name): certificate and key read again (new connections)")
        }
        if let m = plan.mqtt { applyMQTTLimits(m) }
        r.applied += plan.mqttChanges
        for (name, c) in plan.listenerLimits {
            guard let l = running.first(where: { $0.name == name }) else { continue }
            let was = (l.maxConnections.load(ordering: .relaxed), l.maxConnRate.load(ordering: .relaxed))
            l.setLimits(maxConnections: c.maxConnections, maxConnRate: c.maxConnRate)
            r.applied.append("listener \(name): max_connections \(was.0) -> \(c.maxConnections), "
                             + "max_conn_rate \(was.1) -> \(c.maxConnRate) (next accepted connections; open ones stay)")
        }
        let dropped = auth.invalidate(.all)
        r.applied.append("auth cache: \(dropped) cached decision(s) dropped")
        r.needsRestart = plan.needsRestart
        appliedConfig.box.withLockedValue { $0 = plan.inForce }
        logger.info("configuration reloaded by swiftlet-ctl", metadata: [
            "config.file": "\(path)", "config.applied": "\(r.applied.joined(separator: "; "))",
            "config.needs_restart": "\(r.needsRestart.joined(separator: ", "))"])
        return r
    }
}
