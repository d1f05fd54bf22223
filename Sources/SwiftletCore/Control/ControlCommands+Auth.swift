import SwiftletAuth
import Foundation
import NIOCore

/// `cache stats | clear [--client ID | --user NAME]`, `acl reload | list`.
extension Broker {
    static let cacheUsage = "cache stats\ncache clear [--client <clientid> | --user <username>]"
    static let aclUsage = "acl reload\nacl list"

    func registerAuthCommands() {
        builtin("cache", usage: Self.cacheUsage) { b, args, loop in
            switch args.first {
            case "stats" where args.count == 1:
                return b.collectStats().hop(to: loop).map { b.cacheStats(connectionHits: $0.aclHits) }
            case "clear":
                let scope: DecisionCache<Bool>.Scope
                switch Array(args.dropFirst()) {
                case []: scope = .all
                case let a where a.count == 2 && a[0] == "--client": scope = .clientId(a[1])
                case let a where a.count == 2 && a[0] == "--user": scope = .username(a[1])
                default: return loop.reply(.usage("cache clear [--client <clientid> | --user <username>]"))
                }
                let n = b.auth.invalidate(scope)
                let what: String
                switch scope {
                case .all: what = "all"
                case .clientId(let c): what = "client \(c)"
                case .username(let u): what = "user \(u)"
                }
                b.logger.info("auth cache cleared by swiftlet-ctl", metadata: ["auth.scope": "\(what)", "auth.cache_dropped": "\(n)"])
                return loop.reply(.done("cache cleared (\(what)): \(n) entries dropped", ["dropped": n, "scope": what]))
            default: return loop.reply(.usage(Self.cacheUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }

        builtin("acl", usage: Self.aclUsage) { b, args, loop in
            switch args {
            case ["list"]: return loop.reply(b.aclList())
            case ["reload"]:
                return b.threadPool.runIfActive(eventLoop: loop) { try b.builtinAuth.reloadACL() }.map { n in
                    let dropped = b.auth.invalidate(.all)
                    b.logger.info("ACL reloaded by swiftlet-ctl", metadata: ["auth.acl_rules": "\(n)", "auth.cache_dropped": "\(dropped)"])
                    return .done("ACL reloaded: \(n) rule(s) from \(b.config.auth.aclFile ?? "(emqttd defaults)")",
                                 ["rules": n, "file": b.config.auth.aclFile.map { $0 as Any } ?? NSNull()])
                }.recover { .failure("ACL not reloaded (old rules kept): \($0)") }
            default: return loop.reply(.usage(Self.aclUsage.replacingOccurrences(of: "\n", with: " | ")))
            }
        }
    }

    private func cacheStats(connectionHits: [Int]) -> ControlReply {
        func cacheJSON<V>(_ c: DecisionCache<V>) -> [String: Any] {
            ["entries": c.count, "capacity": c.capacity, "hits": c.hits, "misses": c.misses,
             "collapsed": c.collapsed, "evictions": c.evictions]
        }
        let caches: [(String, [String: Any])] = [("authn", cacheJSON(auth.authnCache)), ("authz", cacheJSON(auth.authzCache))]
        let cols = ["entries", "capacity", "hits", "misses", "collapsed", "evictions"]
        var text = TextTable.render(["CACHE"] + cols.map { $0.uppercased() },
                                    caches.map { name, j in [name] + cols.map { "\(j[$0] ?? 0)" } })
        let providers = auth.providers
        let stats = auth.allStats
        var provJSON: [[String: Any]] = []
        var rows: [[String]] = []
        for name in Set(providers.map { $0.name }).union(stats.keys).sorted() {
            let p = providers.first { $0.name == name }
            let st = stats[name]
            let s = st.map { $0.snapshot(connectionHits: $0.slot < connectionHits.count ? connectionHits[$0.slot] : 0) } ?? [:]
            var o: [String: Any] = ["name": name, "in_chain": p != nil]
            if let p {
                o["order"] = p.order
                o["authenticates"] = p.authenticates
                o["authorizes"] = p.authorizes
                if p.authenticates { o["authn_order"] = p.order(for: .authn) }
                if p.authorizes { o["authz_order"] = p.order(for: .authz) }
            }
            for (k, v) in s { o[k] = v }
            provJSON.append(o)
            let orders = p.map { p in
                [p.authenticates ? "\(p.order(for: .authn))" : "-", p.authorizes ? "\(p.order(for: .authz))" : "-"]
            } ?? ["-", "-"]
            rows.append([name] + orders + ["\(s["requests"] ?? 0)", "\(s["cache_hits"] ?? 0)", "\(s["timeouts"] ?? 0)",
                         "\(s["errors"] ?? 0)", "\(s["restarts"] ?? 0)"])
        }
        text += "\n\n" + TextTable.render(["PROVIDER", "AUTHN ORDER", "AUTHZ ORDER", "REQUESTS", "CACHE HITS", "TIMEOUTS",
                                            "ERRORS", "RESTARTS"], rows)
        return .done(text, ["authn": caches[0].1, "authz": caches[1].1, "providers": provJSON])
    }

    private func aclList() -> ControlReply {
        let rules = builtinAuth.rules
        var rows: [[String]] = []
        var json: [[String: Any]] = []
        for (i, r) in rules.enumerated() {
            let who: (String, String)
            switch r.who {
            case .all: who = ("all", "")
            case .user(let u): who = ("user", u)
            case .clientId(let c): who = ("clientid", c)
            case .ipaddr(let cidr): who = ("ipaddr", cidr.ctlText)
            case .and(let all): who = ("and", all.map { "\($0)" }.joined(separator: ", "))
            }
            let perm = r.allow ? "allow" : "deny"
            rows.append(["\(i + 1)", perm, who.1.isEmpty ? who.0 : "\(who.0) \(who.1)", r.access.rawValue,
                         r.topics.joined(separator: ", ")])
            var o: [String: Any] = ["permission": perm, "access": r.access.rawValue, "topics": r.topics]
            if !who.1.isEmpty { o[who.0] = who.1 }
            json.append(o)
        }
        let text = TextTable.render(["#", "PERMISSION", "WHO", "ACCESS", "TOPICS"], rows)
            + "\n\(rules.count) rule(s) from \(config.auth.aclFile ?? "(emqttd defaults)")"
        return .done(text, ["file": config.auth.aclFile.map { $0 as Any } ?? NSNull(), "rules": json])
    }
}

extension CIDR {
    /// `a.b.c.d/n` or `x:x:...:x/n` (uncompressed) for ctl listings.
    fileprivate var ctlText: String {
        let addr: String
        if bytes.count == 4 {
            addr = bytes.map { "\($0)" }.joined(separator: ".")
        } else {
            addr = stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":")
        }
        return "\(addr)/\(prefix)"
    }
}
