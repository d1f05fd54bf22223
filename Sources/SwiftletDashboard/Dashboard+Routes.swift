import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension Dashboard {
    func makeRouter() -> Router<DashboardContext> {
        let router = Router(context: DashboardContext.self)
        router.add(middleware: AuthMiddleware(dashboard: self))
        let api = router.group("api/v5")

        // Health and documents (no auth).
        router.get("status") { _, _ in self.health() }
        api.get("status") { _, _ in self.health() }
        api.get("openapi.json") { _, _ in
            var h: HTTPFields = [.contentType: "application/json"]
            SecurityHeaders.apply(&h, api: true)
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: OpenAPI.document)))
        }
        api.get("prometheus/stats") { _, _ in try await self.prometheus() }
        router.get("metrics") { _, _ in try await self.prometheus() }

        // Sessions of the dashboard itself.
        api.post("login") { req, ctx in try await self.login(req, ctx) }
        api.post("logout") { req, ctx in
            if let t = AuthMiddleware.bearer(req) ?? AuthMiddleware.cookie(req) { self.tokens.revoke(t) }
            var r = JSON.noContent()
            r.headers[.setCookie] = "swiftlet_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            return r
        }
        api.get("users") { _, _ in JSON.response(self.admins.admins.map(Self.adminJSON)) }
        api.post("users") { req, _ in
            let b = try await Body.read(req, allowed: ["username", "password", "description", "role"], required: ["username", "password"])
            try await self.mapStore { try await self.admins.addAdmin(b.required("username"), password: b.required("password"),
                                                                     description: b.string("description") ?? "") }
            return JSON.response(Self.adminJSON(self.admins.admin(try b.required("username"))!))
        }
        api.delete("users/{username}") { _, ctx in
            let name = try ctx.parameters.require("username")
            guard name != ctx.admin else { throw APIError(.badRequest, "BAD_REQUEST", "an admin cannot delete itself") }
            try await self.mapStore { try self.admins.deleteAdmin(name) }
            self.tokens.revokeAll(of: name)
            return JSON.noContent()
        }
        api.post("users/{username}/change_pwd") { req, ctx in try await self.changePassword(req, ctx) }
        api.get("api_key") { _, _ in JSON.response(self.admins.apiKeys.map(Self.keyJSON)) }
        api.post("api_key") { req, _ in
            let b = try await Body.read(req, allowed: ["name", "desc", "expired_at", "enable"], required: ["name"])
            var expires: Double?
            if let e = try b.string("expired_at") {
                guard let d = ISO8601DateFormatter().date(from: e) else { throw APIError.badRequest("expired_at must be an RFC 3339 time") }
                expires = d.timeIntervalSince1970
            }
            let name = try b.required("name")
            let desc = try b.string("desc") ?? ""
            let enabled = try b.bool("enable") ?? true
            let made = try await self.mapStore { try await self.admins.addKey(name: name, description: desc, enabled: enabled, expiresAt: expires) }
            var o = Self.keyJSON(made.0)
            o["api_secret"] = made.1
            return JSON.response(o)
        }
        api.delete("api_key/{name}") { _, ctx in
            let name = try ctx.parameters.require("name")
            try await self.mapStore { try self.admins.deleteKey(name) }
            return JSON.noContent()
        }

        // The broker.
        api.get("nodes") { _, _ in JSON.response([try await self.node()]) }
        api.get("nodes/{node}") { _, ctx in
            guard try ctx.parameters.require("node") == self.broker.nodeName else { throw APIError.notFound("no node \(try ctx.parameters.require("node"))") }
            return JSON.response(try await self.node())
        }
        api.get("stats") { _, _ in
            let s = try await self.status()
            let topics = (try await self.ctl("topics", ["list"]) as? [Any])?.count ?? 0
            return JSON.response(["connections.count": s["clients"] ?? 0, "connections.max": s["clients_max"] ?? 0,
                                  "live_connections.count": s["clients"] ?? 0,
                                  "sessions.count": s["sessions"] ?? 0, "subscriptions.count": s["subscriptions"] ?? 0,
                                  "retained.count": s["retained"] ?? 0, "topics.count": topics, "sidecars.count": s["sidecars"] ?? 0])
        }
        api.get("metrics") { _, _ in
            let s = try await self.status()
            return JSON.response(["messages.received": s["messages_received"] ?? 0, "messages.sent": s["messages_sent"] ?? 0,
                                  "messages.dropped": s["messages_dropped"] ?? 0, "bytes.received": s["bytes_received"] ?? 0,
                                  "bytes.sent": s["bytes_sent"] ?? 0])
        }
        api.get("monitor_current") { _, _ in
            if let m = self.monitor.latest { return JSON.response(m.json) }
            let s = try await self.status()
            return JSON.response(["received_msg_rate": 0, "sent_msg_rate": 0, "dropped_msg_rate": 0,
                                  "connections": s["clients"] ?? 0, "subscriptions": s["subscriptions"] ?? 0])
        }
        api.get("monitor") { _, _ in JSON.response(self.monitor.recent.map(\.json)) }
        api.get("monitor/stream") { _, _ in self.monitorStream() }
        api.get("listeners") { _, _ in
            let o = try await self.ctl("listeners", []) as? [String: Any] ?? [:]
            let list = (o["listeners"] as? [[String: Any]] ?? []).map { l -> [String: Any] in
                ["id": l["name"] ?? "", "type": l["type"] ?? "", "bind": l["bind"] ?? "", "address": l["address"] ?? "",
                 "running": !((l["address"] as? String) ?? "").isEmpty,
                 "current_connections": l["connections"] ?? 0, "max_connections": l["max_connections"] ?? 0]
            }
            return JSON.response(list)
        }

        // Clients, sessions, subscriptions, topics.
        api.get("clients") { req, _ in try await self.clients(req) }
        api.get("clients/{clientid}") { _, ctx in
            let id = try ctx.parameters.require("clientid")
            let o = try await self.ctl("clients", ["show", id], notFound: "CLIENTID_NOT_FOUND")
            return JSON.response(Self.clientJSON(o as? [String: Any] ?? [:], connected: true))
        }
        api.delete("clients/{clientid}") { _, ctx in
            _ = try await self.ctl("clients", ["kick", try ctx.parameters.require("clientid")], notFound: "CLIENTID_NOT_FOUND")
            return JSON.noContent()
        }
        api.get("clients/{clientid}/subscriptions") { _, ctx in
            let list = try await self.ctl("subscriptions", ["list", try ctx.parameters.require("clientid")], notFound: "CLIENTID_NOT_FOUND")
            return JSON.response((list as? [[String: Any]] ?? []).map(Self.subscriptionJSON))
        }
        api.post("clients/{clientid}/subscribe") { req, ctx in
            let b = try await Body.read(req, allowed: ["topic", "qos", "nl", "rap", "rh"], required: ["topic"])
            let id = try ctx.parameters.require("clientid")
            let qos = try b.int("qos", 0...2) ?? 0
            let o = try await self.ctl("subscriptions", ["add", id, try b.required("topic"), "\(qos)"], notFound: "CLIENTID_NOT_FOUND")
            return JSON.response(["clientid": id, "topic": try b.required("topic"), "qos": qos, "result": o])
        }
        api.post("clients/{clientid}/unsubscribe") { req, ctx in
            let b = try await Body.read(req, allowed: ["topic"], required: ["topic"])
            _ = try await self.ctl("subscriptions", ["del", try ctx.parameters.require("clientid"), try b.required("topic")],
                                   notFound: "CLIENTID_NOT_FOUND")
            return JSON.noContent()
        }
        api.get("sessions") { req, _ in
            let paging = try Paging(req)
            let q = req.uri.queryParameters
            var list = (try await self.ctl("sessions", ["list"]) as? [[String: Any]] ?? []).map(Self.sessionJSON)
            if let id = q["clientid"] { list = list.filter { $0["clientid"] as? String == String(id) } }
            if let st = q["conn_state"] {
                guard st == "connected" || st == "disconnected" else { throw APIError.badRequest("conn_state is connected or disconnected") }
                list = list.filter { ($0["connected"] as? Bool) == (st == "connected") }
            }
            return JSON.response(paging.apply(list))
        }
        api.get("subscriptions") { req, _ in
            let paging = try Paging(req)
            let q = req.uri.queryParameters
            var list = (try await self.ctl("subscriptions", ["list"]) as? [[String: Any]] ?? []).map(Self.subscriptionJSON)
            if let id = q["clientid"] { list = list.filter { $0["clientid"] as? String == String(id) } }
            if let t = q["topic"] { list = list.filter { $0["topic"] as? String == String(t) } }
            if let qs = q["qos"] {
                guard let qos = Int(String(qs)), (0...2).contains(qos) else { throw APIError.badRequest("qos is 0, 1 or 2") }
                list = list.filter { ($0["qos"] as? Int) == qos }
            }
            return JSON.response(paging.apply(list))
        }
        api.get("topics") { req, _ in
            let paging = try Paging(req)
            var list = (try await self.ctl("topics", ["list"]) as? [[String: Any]] ?? []).map { t -> [String: Any] in
                ["topic": t["filter"] ?? "", "node": self.broker.nodeName, "subscribers": t["subscribers"] ?? 0]
            }
            if let t = req.uri.queryParameters["topic"] { list = list.filter { $0["topic"] as? String == String(t) } }
            return JSON.response(paging.apply(list))
        }

        // Retained messages and publish.
        api.get("mqtt/retainer/messages") { req, _ in
            let paging = try Paging(req)
            let list = (try await self.ctl("retained", ["list"]) as? [[String: Any]] ?? []).map(Self.retainedJSON)
            return JSON.response(paging.apply(list))
        }
        api.get("mqtt/retainer/message/{topic}") { _, ctx in
            let topic = try Self.topicParameter(ctx)
            let list = try await self.ctl("retained", ["list", topic]) as? [[String: Any]] ?? []
            guard let m = list.first(where: { $0["topic"] as? String == topic }) else { throw APIError.notFound("no retained message on \(topic)") }
            return JSON.response(Self.retainedJSON(m))
        }
        api.delete("mqtt/retainer/message/{topic}") { _, ctx in
            let topic = try Self.topicParameter(ctx)
            guard !topic.contains("+"), !topic.contains("#") else { throw APIError.badRequest("a topic, not a filter") }
            _ = try await self.ctl("retained", ["del", topic], notFound: "NOT_FOUND")
            return JSON.noContent()
        }
        api.post("publish") { req, _ in try await self.publish(req) }

        // Plugins (sidecars).
        api.get("plugins") { _, _ in
            let list = try await self.ctl("plugins", ["list"]) as? [[String: Any]] ?? []
            return JSON.response(list)
        }
        for action in ["load", "unload", "reload"] {
            api.put("plugins/{name}/\(action)") { _, ctx in
                let name = try ctx.parameters.require("name")
                let o = try await self.ctl("plugins", [action, name], notFound: "NOT_FOUND")
                return JSON.response(o)
            }
        }
        api.get("plugins/{name}/config") { _, ctx in try self.pluginConfig(try ctx.parameters.require("name")) }

        // recon (swiftlet-ctl recon) and the live configuration reload (reload config).
        for verb in ["memory", "allocated", "sidecars"] {
            api.get("recon/\(verb)") { _, _ in JSON.response(try await self.ctl("recon", [verb])) }
        }
        api.get("recon/node_stats") { req, _ in
            let q = req.uri.queryParameters
            let args = ["node_stats", q["samples"].map(String.init) ?? "5", q["interval"].map(String.init) ?? "1"]
            return JSON.response(try await self.ctl("recon", args))
        }
        api.post("recon/bin_leak") { _, _ in JSON.response(try await self.ctl("recon", ["bin_leak"])) }
        api.post("reload/config") { _, _ in JSON.response(try await self.ctl("reload", ["config"])) }

        // Built-in MQTT users and ACL, the decision cache, banned clients.
        let users = api.group("authentication/password_based:built_in_database/users")
        users.get { req, _ in
            let paging = try Paging(req)
            let list = (try await self.ctl("users", ["list"]) as? [[String: Any]] ?? []).map { u -> [String: Any] in
                ["user_id": u["username"] ?? "", "is_superuser": u["superuser"] ?? false, "password_scheme": u["hash"] ?? ""]
            }
            return JSON.response(paging.apply(list))
        }
        users.post { req, _ in
            let b = try await Body.read(req, allowed: ["user_id", "password", "is_superuser"], required: ["user_id", "password"])
            let su = try b.bool("is_superuser") ?? false
            _ = try await self.ctl("users", ["add", try b.required("user_id"), try b.required("password")] + (su ? ["--superuser"] : []))
            return JSON.response(["user_id": try b.required("user_id"), "is_superuser": su], status: .created)
        }
        users.put("{user_id}") { req, ctx in
            let b = try await Body.read(req, allowed: ["password", "is_superuser"], required: ["password"])
            let id = try ctx.parameters.require("user_id")
            _ = try await self.ctl("users", ["passwd", id, try b.required("password")], notFound: "NOT_FOUND")
            return JSON.response(["user_id": id])
        }
        users.delete("{user_id}") { _, ctx in
            _ = try await self.ctl("users", ["del", try ctx.parameters.require("user_id")], notFound: "NOT_FOUND")
            return JSON.noContent()
        }
        let rules = api.group("authorization/sources/built_in_database/rules")
        rules.get { _, _ in JSON.response(try await self.ctl("acl", ["list"])) }
        rules.post { req, _ in
            let b = try await Body.read(req, allowed: Self.aclRuleFields.union(["position"]), required: ["permission"])
            let at = try b.int("position", 1...1_000_000).map { ["--at", "\($0)"] } ?? []
            let o = try await self.ctl("acl", ["add"] + (try Self.aclRuleArgs(b)) + at)
            return JSON.response(o, status: .created)
        }
        rules.put("{n}") { req, ctx in
            let n = try Self.ruleNumber(ctx)
            let b = try await Body.read(req, allowed: Self.aclRuleFields, required: ["permission"])
            return JSON.response(try await self.ctl("acl", ["set", n] + (try Self.aclRuleArgs(b)), notFound: "NOT_FOUND"))
        }
        rules.delete("{n}") { _, ctx in
            _ = try await self.ctl("acl", ["del", try Self.ruleNumber(ctx)], notFound: "NOT_FOUND")
            return JSON.noContent()
        }
        rules.post("{n}/move") { req, ctx in
            let n = try Self.ruleNumber(ctx)
            let b = try await Body.read(req, allowed: ["position"], required: ["position"])
            let to = try b.int("position", 1...1_000_000) ?? 1
            return JSON.response(try await self.ctl("acl", ["move", n, "\(to)"], notFound: "NOT_FOUND"))
        }
        api.post("authorization/sources/built_in_database/reload") { _, _ in
            JSON.response(try await self.ctl("acl", ["reload"]))
        }
        api.get("authorization/cache") { _, _ in JSON.response(try await self.ctl("cache", ["stats"])) }
        api.delete("authorization/cache") { _, _ in
            _ = try await self.ctl("cache", ["clear"])
            return JSON.noContent()
        }
        api.get("banned") { req, _ in
            let paging = try Paging(req)
            return JSON.response(paging.apply(try await self.ctl("banned", ["list"]) as? [[String: Any]] ?? []))
        }
        api.post("banned") { req, _ in
            let b = try await Body.read(req, allowed: ["as", "who", "reason", "until", "by", "at"], required: ["as", "who"])
            var args = ["add", try b.required("as"), try b.required("who")]
            if let r = try b.string("reason") { args += ["--reason", r] }
            if let u = try b.string("until") {
                guard let d = ISO8601DateFormatter().date(from: u) else { throw APIError.badRequest("until must be an RFC 3339 time") }
                let secs = d.timeIntervalSinceNow
                guard secs > 0 else { throw APIError.badRequest("until is in the past") }
                args += ["--for", "\(Int(secs.rounded(.up)))"]
            }
            return JSON.response(try await self.ctl("banned", args), status: .ok)
        }
        api.delete("banned/{as}/{who}") { _, ctx in
            _ = try await self.ctl("banned", ["del", try ctx.parameters.require("as"), try ctx.parameters.require("who")], notFound: "NOT_FOUND")
            return JSON.noContent()
        }

        // ctl commands sidecars registered (and the broker's own), for scripts.
        api.post("ctl") { req, _ in
            let b = try await Body.read(req, allowed: ["args"], required: ["args"])
            guard case .array(let items)? = b.object["args"], !items.isEmpty else { throw APIError.badRequest("\"args\" must be a non-empty array of strings") }
            let args = try items.map { v -> String in
                guard case .string(let s) = v else { throw APIError.badRequest("\"args\" must be a non-empty array of strings") }
                return s
            }
            let reply = try await self.control.dispatch(args[0], args: Array(args.dropFirst()), on: self.group.next()).get()
            return JSON.response(["status": Int(reply.status), "text": reply.text, "json": JSON.parse(reply.json) ?? NSNull()],
                                 status: reply.status == 0 ? .ok : .badRequest)
        }

        // The UI.
        if let www = wwwDirectory {
            router.get("/") { _, ctx in try await self.file(www, "index.html", ctx) }
            router.get("index.html") { _, ctx in try await self.file(www, "index.html", ctx) }
            router.get("static/**") { _, ctx in try await self.file(www, ctx.parameters.getCatchAll().joined(separator: "/"), ctx) }
        }
        return router
    }

    // MARK: Handlers

    func health() -> Response {
        JSON.response(["node": broker.nodeName, "status": "running", "version": broker.version,
                       "uptime": Int(Date().timeIntervalSince(startedAt))])
    }

    func status() async throws -> [String: Any] { try await broker.status() }

    func node() async throws -> [String: Any] {
        let s = try await status()
        return ["node": broker.nodeName, "node_status": "running", "version": broker.version,
                "uptime": ((s["uptime_seconds"] as? NSNumber)?.intValue ?? 0) * 1000,
                "connections": s["clients"] ?? 0, "live_connections": s["clients"] ?? 0,
                "memory_used": Self.residentBytes(), "process_pid": Int(getpid()),
                "sys_path": FileManager.default.currentDirectoryPath]
    }

    /// Resident set size from /proc (0 where there is none).
    static func residentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let parts = s.split(separator: " ")
        guard parts.count > 1, let pages = Int(parts[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func login(_ req: Request, _ ctx: DashboardContext) async throws -> Response {
        if let wait = limiter.attempt(from: ctx.remoteAddress) {
            var e = APIError(.tooManyRequests, "TOO_MANY_REQUESTS", "too many login attempts from this address; retry later")
            e.headers[.retryAfter] = "\(Int(wait.rounded(.up)))"
            throw e
        }
        let b = try await Body.read(req, allowed: ["username", "password"], required: ["username", "password"])
        let user = try b.string("username") ?? "", password = try b.string("password") ?? ""
        guard let admin = await admins.verify(user, password) else {
            logger.warning("dashboard login failed", metadata: ["dashboard.user": "\(user)", "dashboard.peer": "\(ctx.remoteAddress)"])
            throw APIError(.unauthorized, "BAD_USERNAME_OR_PWD", "bad username or password")
        }
        let (token, session) = tokens.issue(for: admin.username)
        logger.info("dashboard login", metadata: ["dashboard.user": "\(admin.username)", "dashboard.peer": "\(ctx.remoteAddress)"])
        var r = JSON.response(["token": token, "version": broker.version, "license": ["edition": "opensource"],
                               "password_change_required": admin.mustChange, "csrf_token": session.csrf,
                               "expires_in": Int(tokens.ttl)] as [String: Any])
        r.headers[.setCookie] = "swiftlet_session=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(tokens.ttl))"
            + (config.certFile != nil ? "; Secure" : "")
        return r
    }

    func changePassword(_ req: Request, _ ctx: DashboardContext) async throws -> Response {
        let name = try ctx.parameters.require("username")
        let b = try await Body.read(req, allowed: ["old_pwd", "new_pwd"], required: ["old_pwd", "new_pwd"])
        let old = try b.string("old_pwd") ?? "", new = try b.string("new_pwd") ?? ""
        guard name == ctx.admin else { throw APIError(.forbidden, "FORBIDDEN", "an admin changes only its own password (others: DELETE and POST /users)") }
        guard await admins.verify(name, old) != nil else { throw APIError(.badRequest, "BAD_USERNAME_OR_PWD", "the old password is wrong") }
        guard new != old else { throw APIError.badRequest("the new password must differ from the old one") }
        try await mapStore { try await self.admins.setPassword(name, new) }
        tokens.revokeAll(of: name, except: AuthMiddleware.bearer(req) ?? AuthMiddleware.cookie(req))
        logger.info("dashboard password changed", metadata: ["dashboard.user": "\(name)"])
        return JSON.noContent()
    }

    func clients(_ req: Request) async throws -> Response {
        let paging = try Paging(req)
        let q = req.uri.queryParameters
        var list: [[String: Any]] = []
        let state = q["conn_state"].map(String.init)
        if let state, state != "connected", state != "disconnected" { throw APIError.badRequest("conn_state is connected or disconnected") }
        if state != "disconnected" {
            list += (try await ctl("clients", ["list"]) as? [[String: Any]] ?? []).map { Self.clientJSON($0, connected: true) }
        }
        if state != "connected" {
            list += (try await ctl("sessions", ["list"]) as? [[String: Any]] ?? [])
                .filter { ($0["connected"] as? Bool) == false }
                .map { s in Self.clientJSON(["clientid": s["clientid"] ?? "", "protocol": s["protocol"] ?? 0,
                                             "subscriptions": s["subscriptions"] ?? 0, "inflight": s["inflight"] ?? 0,
                                             "queued": s["queued"] ?? 0], connected: false) }
        }
        func eq(_ k: String, _ field: String) { if let v = q[Substring(k)] { list = list.filter { $0[field] as? String == String(v) } } }
        func like(_ k: String, _ field: String) {
            if let v = q[Substring(k)] { list = list.filter { ($0[field] as? String)?.localizedCaseInsensitiveContains(String(v)) == true } }
        }
        eq("clientid", "clientid")
        eq("username", "username")
        eq("ip_address", "ip_address")
        like("like_clientid", "clientid")
        like("like_username", "username")
        list.sort { ($0["clientid"] as? String ?? "") < ($1["clientid"] as? String ?? "") }
        return JSON.response(paging.apply(list))
    }

    func publish(_ req: Request) async throws -> Response {
        let b = try await Body.read(req, allowed: ["topic", "payload", "qos", "retain", "payload_encoding", "clientid", "properties"],
                                    required: ["topic"])
        let topic = try b.required("topic")
        guard !topic.contains("+"), !topic.contains("#"), !topic.hasPrefix("$"), topic.utf8.count <= 65_535 else {
            throw APIError.badRequest("topic must be a topic name without wildcards, not starting with $")
        }
        let qos = try b.int("qos", 0...2) ?? 0
        let retain = try b.bool("retain") ?? false
        let text = try b.string("payload") ?? ""
        var payload = ByteBuffer()
        switch try b.string("payload_encoding") ?? "plain" {
        case "plain": payload.writeString(text)
        case "base64":
            guard let d = Data(base64Encoded: text) else { throw APIError.badRequest("payload is not base64") }
            payload.writeBytes(d)
        default: throw APIError.badRequest("payload_encoding is plain or base64")
        }
        guard payload.readableBytes <= APIError.maxBody else { throw APIError.badRequest("payload too large") }
        broker.publish(topic, payload, qos, retain)
        return JSON.response(["id": AdminStore.randomToken(16)])
    }

    func pluginConfig(_ name: String) throws -> Response {
        guard !name.contains("/"), !name.contains(".."), let dir = pluginsDir else { throw APIError.notFound("no plugin \(name)") }
        let path = (dir as NSString).appendingPathComponent("\(name).toml")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw APIError.notFound("no plugin \(name)") }
        return JSON.response(["name": name, "file": path, "config": Self.masked(text)])
    }

    /// The TOML text with the value of every key that looks secret replaced.
    static func masked(_ toml: String) -> String {
        let secret = ["password", "passwd", "secret", "token", "key", "credential", "auth"]
        return toml.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let l = String(line)
            guard let eq = l.firstIndex(of: "="), !l.trimmingCharacters(in: .whitespaces).hasPrefix("#") else { return l }
            let key = l[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            guard secret.contains(where: { key.contains($0) }), !key.hasSuffix("file"), !key.hasSuffix("_field") else { return l }
            return "\(l[..<eq])= \"******\""
        }.joined(separator: "\n")
    }

    var pluginsDir: String? { pluginsDirectory }

    func monitorStream() -> Response {
        var h: HTTPFields = [.contentType: "text/event-stream"]
        SecurityHeaders.apply(&h, api: true)
        let monitor = self.monitor
        return Response(status: .ok, headers: h, body: ResponseBody { writer in
            // A stream lasts at most ten minutes; EventSource reconnects by itself.
            for _ in 0..<600 {
                if monitor.stopped.load(ordering: .relaxed) || Task.isCancelled { break }
                if let s = monitor.latest {
                    let data = JSON.buffer(s.json)
                    var b = ByteBuffer(string: "event: monitor\ndata: ")
                    b.writeImmutableBuffer(data)
                    b.writeString("\n\n")
                    try await writer.write(b)
                }
                try await Task.sleep(nanoseconds: 1_000_000_000)
            }
            try await writer.finish(nil)
        })
    }

    func file(_ root: String, _ relative: String, _ ctx: DashboardContext) async throws -> Response {
        guard !relative.contains(".."), !relative.hasPrefix("/") else { throw APIError.notFound("not found") }
        let path = (root as NSString).appendingPathComponent(relative)
        guard let data = FileManager.default.contents(atPath: path) else { throw APIError.notFound("not found") }
        let types = ["html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
                     "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon", "json": "application/json",
                     "txt": "text/plain; charset=utf-8", "md": "text/plain; charset=utf-8"]
        var h: HTTPFields = [.contentType: types[(relative as NSString).pathExtension.lowercased()] ?? "application/octet-stream"]
        SecurityHeaders.apply(&h, api: false)
        h[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func prometheus() async throws -> Response {
        if let s = try? await status() { metrics.update(status: s) }
        if let l = try? await ctl("listeners", []) as? [String: Any], let list = l["listeners"] as? [[String: Any]] { metrics.update(listeners: list) }
        if let p = try? await ctl("plugins", ["list"]) as? [[String: Any]] { metrics.update(plugins: p) }
        if let c = try? await ctl("cache", ["stats"]) as? [String: Any] { metrics.update(cache: c) }
        var h: HTTPFields = [.contentType: "text/plain; version=0.0.4; charset=utf-8"]
        SecurityHeaders.apply(&h, api: true)
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: metrics.text())))
    }

    /// Admin-store errors as API errors.
    func mapStore<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let e as AdminStore.StoreError {
            switch e {
            case .exists: throw APIError(.conflict, "ALREADY_EXISTS", e.description)
            case .notFound: throw APIError.notFound(e.description)
            case .invalid, .lastAdmin: throw APIError.badRequest(e.description)
            }
        }
    }

    // MARK: Shapes

    static func topicParameter(_ ctx: DashboardContext) throws -> String {
        let raw = try ctx.parameters.require("topic")
        let t = raw.removingPercentEncoding ?? raw
        guard !t.isEmpty else { throw APIError.badRequest("empty topic") }
        return t
    }

    /// A built-in ACL rule in a request body: `permission` allow|deny; at most one of
    /// `username` (or `user`), `clientid`, `ipaddr` (none: everyone); `action` (EMQX's name) or
    /// `access`: publish, subscribe, pubsub or all; `topics` (or EMQX's `topic`).
    static let aclRuleFields: Set<String> = ["permission", "username", "user", "clientid", "ipaddr", "action", "access", "topic", "topics"]

    /// The ctl arguments of `acl add|set` for a rule body; checked again by the broker.
    static func aclRuleArgs(_ b: Body) throws -> [String] {
        let permission = try b.required("permission")
        var who = ["all"]
        let named = try [("user", b.string("username") ?? b.string("user")), ("clientid", b.string("clientid")),
                         ("ipaddr", b.string("ipaddr"))].compactMap { k, v in v.map { "\(k)=\($0)" } }
        guard named.count <= 1 else { throw APIError.badRequest("name at most one of username, clientid and ipaddr") }
        if let w = named.first { who = [w] }
        var access = try b.string("action") ?? b.string("access") ?? "pubsub"
        if access == "all" { access = "pubsub" }
        let topics = try b.strings("topics") ?? b.strings("topic") ?? ["#"]
        guard !topics.isEmpty else { throw APIError.badRequest("\"topics\" needs at least one topic filter") }
        return [permission] + who + [access] + topics
    }

    static func ruleNumber(_ ctx: DashboardContext) throws -> String {
        let raw = try ctx.parameters.require("n")
        guard let n = Int(raw), n >= 1 else { throw APIError.badRequest("rules are numbered from 1, not \(raw)") }
        return "\(n)"
    }

    static func adminJSON(_ a: AdminStore.Admin) -> [String: Any] {
        ["username": a.username, "description": a.description, "role": "administrator",
         "password_change_required": a.mustChange]
    }

    static func keyJSON(_ k: AdminStore.APIKey) -> [String: Any] {
        ["name": k.name, "api_key": k.key, "desc": k.description, "enable": k.enabled,
         "created_at": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: k.createdAt)),
         "expired_at": k.expiresAt.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) as Any } ?? NSNull(),
         "expired": k.expiresAt.map { $0 <= Date().timeIntervalSince1970 } ?? false]
    }

    static func clientJSON(_ c: [String: Any], connected: Bool) -> [String: Any] {
        var ip: Any = NSNull(), port: Any = NSNull()
        if let peer = c["peer"] as? String, let colon = peer.lastIndex(of: ":") {
            var host = String(peer[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            ip = host
            port = Int(peer[peer.index(after: colon)...]) ?? NSNull()
        }
        let level = (c["protocol"] as? NSNumber)?.intValue ?? 0
        return ["clientid": c["clientid"] ?? "", "username": c["username"] ?? NSNull(), "ip_address": ip, "port": port,
                "connected": connected, "proto_ver": level, "proto_name": level == 3 ? "MQIsdp" : "MQTT",
                "keepalive": c["keepalive"] ?? NSNull(), "clean_start": c["clean_start"] ?? NSNull(),
                "listener": c["listener"] ?? NSNull(), "subscriptions_cnt": c["subscriptions"] ?? 0,
                "inflight_cnt": c["inflight"] ?? 0, "mqueue_len": c["queued"] ?? 0, "node": "local"]
    }

    static func sessionJSON(_ s: [String: Any]) -> [String: Any] {
        ["clientid": s["clientid"] ?? "", "connected": s["connected"] ?? false, "proto_ver": s["protocol"] ?? 0,
         "expiry_interval": s["expiry_interval"] ?? NSNull(), "persistent": s["persistent"] ?? false,
         "subscriptions_cnt": s["subscriptions"] ?? 0, "inflight_cnt": s["inflight"] ?? 0, "mqueue_len": s["queued"] ?? 0,
         "awaiting_rel_cnt": s["awaiting_rel"] ?? 0, "offline_seconds": s["offline_seconds"] ?? NSNull()]
    }

    static func subscriptionJSON(_ s: [String: Any]) -> [String: Any] {
        ["clientid": s["clientid"] ?? "", "topic": s["filter"] ?? "", "qos": (s["qos"] as? NSNumber)?.intValue ?? 0,
         "nl": (s["no_local"] as? Bool) == true ? 1 : 0, "rap": (s["retain_as_published"] as? Bool) == true ? 1 : 0,
         "rh": (s["retain_handling"] as? NSNumber)?.intValue ?? 0, "node": "local"]
    }

    static func retainedJSON(_ m: [String: Any]) -> [String: Any] {
        var payload = m["payload_base64"] as? String
        if payload == nil, let s = m["payload"] as? String { payload = Data(s.utf8).base64EncodedString() }
        return ["topic": m["topic"] ?? "", "qos": m["qos"] ?? 0, "payload": payload ?? "", "bytes": m["bytes"] ?? 0]
    }
}
