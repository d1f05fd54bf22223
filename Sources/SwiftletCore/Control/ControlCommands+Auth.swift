import SwiftletAuth
import Foundation
import NIOCore

/// `cache stats | clear [--client ID | --user NAME]`, `acl reload | list | add | set | del | move`.
extension Broker {
    static let cacheUsage = "cache stats\ncache clear [--client <clientid> | --user <username>]"
    static let aclUsage = """
        acl reload
        acl list
        acl add <allow|deny> <all|user=NAME|clientid=ID|ipaddr=CIDR> <publish|subscribe|pubsub> <topic>... [--at N]
        acl set N <allow|deny> <all|user=NAME|clientid=ID|ipaddr=CIDR> <publish|subscribe|pubsub> <topic>...
        acl del N
        acl move N M
        """

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
            default:
                let edit: ACLEdit?
                do { edit = try ACLEdit(args) } catch { return loop.reply(.failure("\(error)")) }
                guard let edit else { return loop.reply(.usage(Self.aclUsage.replacingOccurrences(of: "\n", with: " | "))) }
                return b.aclEdit(edit, loop)
            }
        }
    }

    /// One change to the built-in rules, from ctl arguments (positions are 1-based, as listed).
    enum ACLEdit {
        case add(ACLRule, at: Int?)
        case set(Int, ACLRule)
        case del(Int)
        case move(Int, Int)

        /// nil: not an edit (print the usage); throws when the rule or `--at` is wrong.
        init?(_ args: [String]) throws {
            func rule(_ a: ArraySlice<String>) throws -> ACLRule {
                let a = Array(a)
                guard a.count >= 4 else { throw ControlWireError("a rule is: <allow|deny> <who> <access> <topic>...") }
                var user: String?, client: String?, ip: String?
                let who = a[1]
                if who != "all" {
                    let parts = who.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                    let bad = ControlWireError("who must be all, user=NAME, clientid=ID or ipaddr=CIDR, not \(who)")
                    guard parts.count == 2, !parts[1].isEmpty else { throw bad }
                    switch parts[0] {
                    case "user", "username": user = parts[1]
                    case "clientid": client = parts[1]
                    case "ipaddr": ip = parts[1]
                    default: throw bad
                    }
                }
                return try ACLRule.parse(permission: a[0], user: user, clientId: client, ipaddr: ip,
                                         access: a[2], topics: Array(a[3...]), key: "rule")
            }
            switch args.first {
            case "add":
                var rest = Array(args.dropFirst())
                var at: Int?
                if let i = rest.firstIndex(of: "--at") {
                    guard i + 1 < rest.count, let n = Int(rest[i + 1]) else { throw ControlWireError("--at needs a rule number") }
                    at = n
                    rest.removeSubrange(i...(i + 1))
                }
                self = .add(try rule(rest[...]), at: at)
            case "set":
                guard args.count >= 2, let n = Int(args[1]) else { return nil }
                self = .set(n, try rule(args[2...]))
            case "del":
                guard args.count == 2, let n = Int(args[1]) else { return nil }
                self = .del(n)
            case "move":
                guard args.count == 3, let n = Int(args[1]), let m = Int(args[2]) else { return nil }
                self = .move(n, m)
            default: return nil
            }
        }
    }

    private func aclEdit(_ edit: ACLEdit, _ loop: EventLoop) -> EventLoopFuture<ControlReply> {
        guard let path = config.auth.aclFile else {
            return loop.reply(.failure("no ACL file is configured ([auth] acl_file): the emqttd default rules are built in and read-only"))
        }
        let auth = builtinAuth
        return threadPool.runIfActive(eventLoop: loop) { () -> (String, Int) in
            var what = ""
            let rules = try auth.editRules { rules in
                /// A rule that must exist (a missing one reads "no rule N", which the API answers 404).
                func index(_ n: Int) throws -> Int {
                    guard n >= 1, n <= rules.count else {
                        throw ControlWireError(rules.isEmpty ? "no rule \(n): there are no rules" : "no rule \(n) (rules are numbered 1 to \(rules.count))")
                    }
                    return n - 1
                }
                /// A place to put a rule: 1 to `last`.
                func position(_ n: Int, last: Int) throws -> Int {
                    guard n >= 1, n <= last else { throw ControlWireError("position \(n) is outside 1 to \(last)") }
                    return n - 1
                }
                switch edit {
                case .add(let r, let at):
                    let i = try at.map { try position($0, last: rules.count + 1) } ?? rules.count
                    rules.insert(r, at: i)
                    what = "rule \(i + 1) added"
                case .set(let n, let r):
                    rules[try index(n)] = r
                    what = "rule \(n) replaced"
                case .del(let n):
                    rules.remove(at: try index(n))
                    what = "rule \(n) deleted"
                case .move(let n, let m):
                    let from = try index(n), to = try position(m, last: rules.count)
                    rules.insert(rules.remove(at: from), at: to)
                    what = "rule \(n) moved to \(m)"
                }
            }
            return (what, rules.count)
        }.map { what, count in
            let dropped = self.auth.invalidate(.all)
            self.logger.info("ACL changed by swiftlet-ctl", metadata: ["auth.acl_change": "\(what)", "auth.acl_rules": "\(count)",
                                                                       "auth.cache_dropped": "\(dropped)"])
            return .done("\(what); \(count) rule(s) in \(path)", ["rules": count, "file": path, "change": what])
        }.recover { e in .failure(e is ControlWireError ? "\(e); ACL not changed" : "ACL not changed: \(e)") }
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
            case .ipaddr(let cidr): who = ("ipaddr", cidr.text)
            case .and(let all): who = ("and", all.map { "\($0)" }.joined(separator: ", "))
            }
            let perm = r.allow ? "allow" : "deny"
            rows.append(["\(i + 1)", perm, who.1.isEmpty ? who.0 : "\(who.0) \(who.1)", r.access.rawValue,
                         r.topics.joined(separator: ", ")])
            var o: [String: Any] = ["n": i + 1, "permission": perm, "access": r.access.rawValue, "topics": r.topics]
            if !who.1.isEmpty { o[who.0] = who.1 }
            json.append(o)
        }
        let text = TextTable.render(["#", "PERMISSION", "WHO", "ACCESS", "TOPICS"], rows)
            + "\n\(rules.count) rule(s) from \(config.auth.aclFile ?? "(emqttd defaults)")"
        return .done(text, ["file": config.auth.aclFile.map { $0 as Any } ?? NSNull(), "rules": json])
    }
}
