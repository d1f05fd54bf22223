import AuthBackends
import Logging
import SidecarKit
import SwiftletIPC

/// emqttd_auth_redis's decisions over any way of running a command (`execute`: the hiredis
/// pool in the sidecar, a fake in unit tests).
///
/// - CONNECT: `authcmd` (nil: not this plugin's user, "ignore"); the stored password, and
///   with `HMGET ... password salt` the salt, checked with `password_hash`; then `supercmd`
///   (a value of 1 / true makes a superuser; an error leaves a normal user) and `subcmd`
///   (`HGETALL`: topic filter => QoS), returned with the allow.
/// - PUBLISH / SUBSCRIBE: `aclcmd` members `publish TOPIC`, `subscribe TOPIC`, `pubsub TOPIC`
///   (emqttd's rule semantics from AuthBackends: `%u`/`%c` substituted literally, wildcards
///   only from the rule) allow; no member matching: `acl_nomatch`.
/// - Redis down, a timeout, an error reply: `error` (the broker's cache and fallback decide).
///
/// A CONNECT's commands (authcmd, supercmd, subcmd) go to Redis together, in one round trip
/// on one connection (a pipeline); supercmd's and subcmd's answers are used only when the
/// password matched.
public struct RedisAuth: Sendable {
    /// Runs commands in one round trip, one reply each, in order.
    public typealias Execute = @Sendable ([[[UInt8]]]) async throws -> [RedisValue]

    public let settings: AuthRedisSettings
    let execute: Execute
    let logger: Logger

    public init(settings: AuthRedisSettings, logger: Logger, execute: @escaping Execute) {
        self.settings = settings
        self.logger = logger
        self.execute = execute
    }

    static func values(_ c: IPCClient) -> PlaceholderValues {
        PlaceholderValues(c)
    }

    private enum Outcome {
        case value(RedisValue)
        case missing  // a placeholder the command uses has no value
        case failed(String)
    }

    /// One command of a round trip: its name for logs, and whether its answer is
    /// field-value pairs (HGETALL: each pair one row for `max_rows`).
    private struct Step {
        var name: String
        var command: RedisCommand
        var pairs = false
    }

    /// Runs the commands in one round trip; a command whose placeholder has no value is not
    /// sent (`missing`).
    private func run(_ steps: [Step], _ client: IPCClient) async -> [Outcome] {
        let values = Self.values(client)
        let rendered = steps.map { $0.command.render(values) }
        let batch = rendered.compactMap { $0 }
        var replies: [RedisValue] = []
        var failure: String?
        if !batch.isEmpty {
            do {
                replies = try await execute(batch)
                if replies.count != batch.count { failure = "\(replies.count) replies to \(batch.count) commands" }
            } catch {
                failure = "\(error)"
            }
        }
        var next = 0
        return zip(steps, rendered).map { step, args -> Outcome in
            guard args != nil else { return .missing }
            if let failure {
                logger.debug("\(step.name) failed: \(failure)", metadata: ["mqtt.client_id": "\(client.clientId)"])
                return .failed("\(step.name): \(failure)")
            }
            let reply = replies[next]
            next += 1
            if case .error(let e) = reply {
                logger.warning("\(step.name) failed: Redis answered \(e)", metadata: ["mqtt.client_id": "\(client.clientId)"])
                return .failed("\(step.name): \(e)")
            }
            if let why = tooLarge(reply, pairs: step.pairs) {
                logger.warning("\(step.name) failed: \(why)", metadata: ["mqtt.client_id": "\(client.clientId)"])
                return .failed("\(step.name): \(why)")
            }
            return .value(reply)
        }
    }

    /// Why an answer is over `max_rows` / `max_field_bytes` (nothing is decided on part of
    /// it, as in the SQL plugins); nil when within.
    func tooLarge(_ v: RedisValue, pairs: Bool) -> String? {
        switch v {
        case .string(let b) where b.count > settings.maxFieldBytes:
            return "a value of \(b.count) bytes, over max_field_bytes (\(settings.maxFieldBytes))"
        case .array(let a):
            let rows = pairs ? a.count / 2 : a.count
            if rows > settings.maxRows { return "\(rows) values, over max_rows (\(settings.maxRows))" }
            for e in a { if let why = tooLarge(e, pairs: false) { return why } }
            return nil
        default:
            return nil
        }
    }

    // MARK: Authentication

    public func authenticate(_ request: AuthnRequest) async -> AuthnAnswer {
        guard let authcmd = settings.authcmd else { return .ignore }
        var steps = [Step(name: "authcmd", command: authcmd)]
        if let c = settings.supercmd { steps.append(Step(name: "supercmd", command: c)) }
        if let c = settings.subcmd { steps.append(Step(name: "subcmd", command: c, pairs: true)) }
        let outcomes = await run(steps, request.client)
        let stored: String?
        let salt: String?
        switch outcomes[0] {
        case .missing: return .ignore
        case .failed(let why): return .error(why)
        case .value(let v):
            switch v {
            case .null: return .ignore
            case .array(let values):
                guard let first = values.first, !first.isNull else { return .ignore }
                stored = first.text
                salt = values.count > 1 ? values[1].text : nil
            default:
                stored = v.text
                salt = nil
            }
        }
        guard let password = request.password else { return .deny("no password", ttlMs: settings.ttlMs) }
        guard await settings.passwordHash.verifyOffloaded(password, stored: stored, salt: salt) else {
            return .deny("bad password", ttlMs: settings.ttlMs)
        }
        var superuser = false
        var subscriptions: [IPCSubscription] = []
        for (step, outcome) in zip(steps, outcomes).dropFirst() {
            switch (step.name, outcome) {
            case ("supercmd", .value(let v)): superuser = Self.isTrue(v)
            case ("subcmd", .value(let v)): subscriptions = self.subscriptions(v, request.client)
            case ("subcmd", .failed(let why)): return .error(why)
            default: break  // supercmd failed or not run: a normal user (emqttd's behaviour)
            }
        }
        return .allow(superuser: superuser, ttlMs: settings.ttlMs, reason: "authcmd", subscriptions: subscriptions)
    }

    /// `supercmd`'s value: 1 / true (any case) is a superuser; nil or anything else is not.
    static func isTrue(_ v: RedisValue) -> Bool {
        let value: RedisValue
        if case .array(let a) = v { value = a.first ?? .null } else { value = v }
        guard let text = value.text?.lowercased() else { return false }
        return text == "1" || text == "true"
    }

    /// `HGETALL mqtt_subs:%u`: field = topic filter, value = QoS 0, 1 or 2. Entries that are
    /// not text or not a QoS are left out (logged); the broker checks the filters and the
    /// ACL of each.
    func subscriptions(_ v: RedisValue, _ client: IPCClient) -> [IPCSubscription] {
        guard case .array(let flat) = v else { return [] }
        var out: [IPCSubscription] = []
        var i = 0
        while i + 1 < flat.count {
            defer { i += 2 }
            guard let filter = flat[i].text, !filter.isEmpty, let q = flat[i + 1].text.flatMap({ UInt8($0) }), q <= 2 else {
                logger.warning("subcmd: entry left out (a topic filter => 0, 1 or 2 expected)",
                               metadata: ["mqtt.client_id": "\(client.clientId)", "redis.field": "\(flat[i].text ?? "(binary)")"])
                continue
            }
            out.append(IPCSubscription(filter: filter, qos: q))
        }
        return out
    }

    // MARK: Authorization

    public func authorize(_ request: AuthzRequest) async -> AuthzAnswer {
        guard let aclcmd = settings.aclcmd else { return .ignore }
        let members: [RedisValue]
        switch await run([Step(name: "aclcmd", command: aclcmd)], request.client)[0] {
        case .missing: return .ignore
        case .failed(let why): return .error(why)
        case .value(.array(let a)): members = a
        case .value(.null): members = []
        case .value(let v): members = [v]
        }
        let rules = members.compactMap { Self.rule($0) }
        let c = request.client
        let client = EmqttdACL.Client(clientId: c.clientId, username: c.username, ipAddress: c.peerAddress)
        let action: EmqttdACL.Action = request.access == .publish ? .publish : .subscribe
        if EmqttdACL.decide(rules, client, action, topic: request.topic) == true {
            return .allow(ttlMs: settings.ttlMs, reason: "aclcmd")
        }
        switch settings.aclNomatch {
        case .allow: return .allow(ttlMs: settings.ttlMs, reason: "acl_nomatch")
        case .deny: return .deny("acl_nomatch", ttlMs: settings.ttlMs)
        case .ignore: return .ignore
        }
    }

    /// A member `publish TOPIC`, `subscribe TOPIC` or `pubsub TOPIC` (the topic is everything
    /// after the first space, spaces included); anything else is no rule.
    static func rule(_ member: RedisValue) -> EmqttdACL.Rule? {
        guard let text = member.text, let space = text.firstIndex(of: " ") else { return nil }
        let topic = String(text[text.index(after: space)...])
        guard !topic.isEmpty, let access = EmqttdACL.Access(rawValue: String(text[..<space]).lowercased()) else { return nil }
        return EmqttdACL.Rule(allow: true, who: .all, access: access, topics: [topic])
    }
}
