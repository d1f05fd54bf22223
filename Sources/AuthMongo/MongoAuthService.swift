import AuthBackends
import Logging
import SidecarKit
import SwiftletIPC

/// emqttd_auth_mongo's decisions over a `MongoDatabase`:
/// - CONNECT: `authquery` finds the user document (none: ignore, as in the SQL plugins); its
///   password field (and `salt`) checked with `password_hash`; then `superquery`'s
///   `super_field` (`true` makes a superuser; an error leaves a normal user). When
///   `superquery` has the same collection and selector as `authquery` (the seed's) one find
///   reads both.
/// - PUBLISH / SUBSCRIBE: every document `aclquery`'s selector matches applies; its
///   `publish`, `subscribe` and `pubsub` lists are emqttd allow rules (`%u`/`%c` substituted
///   literally); none matching: `acl_nomatch`.
/// - A field of the wrong BSON type in a stored document (a numeric password, `publish` not an
///   array of strings): `error` for that user, logged; MongoDB down, slow or refusing: `error`
///   (the broker's cache and fallback decide).
public struct MongoAuthService: Sendable {
    public let settings: AuthMongoSettings
    public let database: any MongoDatabase
    public let logger: Logger

    public init(settings: AuthMongoSettings, database: any MongoDatabase, logger: Logger) {
        self.settings = settings
        self.database = database
        self.logger = logger
    }

    static func values(_ c: IPCClient) -> PlaceholderValues {
        PlaceholderValues(c)
    }

    /// What a stored document says, or why it cannot be read.
    enum Read<T> {
        case ok(T)
        case bad(String)
    }

    // MARK: Authentication

    public func authenticate(_ request: AuthnRequest) async -> AuthnAnswer {
        guard let aq = settings.authQuery else { return .ignore }
        // emqttd: no username, nothing to look up.
        guard request.client.username != nil else { return .ignore }
        let values = Self.values(request.client)
        guard let filter = aq.query.selector.render(values) else { return .ignore }
        let check = aq.passwordHash
        let superQuery = settings.superQuery
        let merged = superQuery.map { $0.query == aq.query } ?? false
        var fields = [aq.passwordField]
        if check.usesSalt { fields.append(aq.saltField) }
        if merged, let sq = superQuery { fields.append(sq.superField) }
        let authFind = MongoFind(collection: aq.query.collection, filter: filter, projection: fields, limit: 1)
        let password = request.password

        let docs: [MongoDocument]
        var superResult: Result<[MongoDocument], BackendError>?
        do {
            if !merged, let sq = superQuery, let superFilter = sq.query.selector.render(values),
               !check.isSlow, let password {
                // A digest is cheap: checked while the client is held, and superquery asked with
                // it right away (one pool round trip per CONNECT instead of two).
                let superFind = MongoFind(collection: sq.query.collection, filter: superFilter,
                                          projection: [sq.superField], limit: 1)
                let maxBytes = settings.maxFieldBytes
                (docs, superResult) = try await database.find(authFind, then: superFind) { found in
                    guard let doc = found.first, doc.overLimit(maxElements: .max, maxStringBytes: maxBytes) == nil,
                          case .ok(let (stored, salt)?) = Self.credentials(doc, aq) else { return false }
                    return check.verify(password, stored: stored, salt: salt)
                }
            } else {
                docs = try await database.find(authFind)
            }
        } catch {
            return .error(failed("authquery", error, request.client))
        }
        guard let doc = docs.first else { return .ignore }
        if let why = doc.overLimit(maxElements: settings.maxRows, maxStringBytes: settings.maxFieldBytes) {
            return .error(bad("authquery", why, request.client))
        }
        let stored: String
        let salt: String?
        switch Self.credentials(doc, aq) {
        case .bad(let why): return .error(bad("authquery", why, request.client))
        case .ok(nil): return .deny("no stored password", ttlMs: settings.ttlMs)
        case .ok(let (p, s)?): (stored, salt) = (p, s)
        }
        guard let password else { return .deny("no password", ttlMs: settings.ttlMs) }
        guard await check.verifyOffloaded(password, stored: stored, salt: salt) else { return .deny("bad password", ttlMs: settings.ttlMs) }
        let superuser: Bool
        if let sq = superQuery {
            if merged {
                superuser = isSuperuser(doc, sq, request.client)
            } else if let superResult {
                superuser = superuserAnswer(superResult, sq, request.client)
            } else {
                superuser = await isSuperuser(values, sq, request.client)
            }
        } else {
            superuser = false
        }
        return .allow(superuser: superuser, ttlMs: settings.ttlMs, reason: "authquery")
    }

    /// The stored password and salt of a user document: nil when it has no password (or it
    /// is null); `bad` when a field is not a string.
    static func credentials(_ doc: MongoDocument, _ aq: MongoAuthQuery) -> Read<(String, String?)?> {
        let stored: String
        switch doc[aq.passwordField] {
        case nil, .null?: return .ok(nil)
        case .string(let s)?: stored = s
        case let v?: return .bad("\(aq.passwordField) is \(v.typeName), not a string")
        }
        guard aq.passwordHash.usesSalt else { return .ok((stored, nil)) }
        switch doc[aq.saltField] {
        case nil, .null?: return .ok((stored, nil))
        case .string(let s)?: return .ok((stored, s))
        case let v?: return .bad("\(aq.saltField) is \(v.typeName), not a string")
        }
    }

    /// `superquery` on its own (a slow password form, or a selector placeholder without a
    /// value): false on any failure.
    func isSuperuser(_ values: PlaceholderValues, _ sq: MongoSuperQuery, _ client: IPCClient) async -> Bool {
        guard let filter = sq.query.selector.render(values) else { return false }
        let f = MongoFind(collection: sq.query.collection, filter: filter, projection: [sq.superField], limit: 1)
        do {
            return superuserAnswer(.success(try await database.find(f)), sq, client)
        } catch {
            return superuserAnswer(.failure(error as? BackendError ?? .query("\(error)")), sq, client)
        }
    }

    func superuserAnswer(_ r: Result<[MongoDocument], BackendError>, _ sq: MongoSuperQuery, _ client: IPCClient) -> Bool {
        switch r {
        case .success(let docs):
            guard let doc = docs.first else { return false }
            return isSuperuser(doc, sq, client)
        case .failure(let e):
            _ = failed("superquery", e, client)
            return false
        }
    }

    /// `super_field`: `true` (or the integer 1) is a superuser; missing, null, false, 0: not;
    /// any other value is logged and not a superuser.
    func isSuperuser(_ doc: MongoDocument, _ sq: MongoSuperQuery, _ client: IPCClient) -> Bool {
        switch doc[sq.superField] {
        case nil, .null?: return false
        case .bool(let b)?: return b
        case .int32(let i)? where i == 0 || i == 1: return i == 1
        case .int64(let i)? where i == 0 || i == 1: return i == 1
        case let v?:
            _ = bad("superquery", "\(sq.superField) is \(v.typeName), not a boolean: a normal user", client)
            return false
        }
    }

    // MARK: Authorization

    public func authorize(_ request: AuthzRequest) async -> AuthzAnswer {
        guard let q = settings.aclQuery else { return .ignore }
        guard let filter = q.selector.render(Self.values(request.client)) else { return .ignore }
        let docs: [MongoDocument]
        do {
            docs = try await database.find(MongoFind(collection: q.collection, filter: filter,
                                                     projection: Self.aclFields.map(\.0), limit: settings.maxRows + 1))
        } catch {
            return .error(failed("aclquery", error, request.client))
        }
        let rules: [EmqttdACL.Rule]
        switch aclRules(docs) {
        case .bad(let why): return .error(bad("aclquery", why, request.client))
        case .ok(let r): rules = r
        }
        let c = request.client
        let client = EmqttdACL.Client(clientId: c.clientId, username: c.username, ipAddress: c.peerAddress)
        let action: EmqttdACL.Action = request.access == .publish ? .publish : .subscribe
        if EmqttdACL.decide(rules, client, action, topic: request.topic) == true {
            return .allow(ttlMs: settings.ttlMs, reason: "aclquery")
        }
        switch settings.aclNomatch {
        case .allow: return .allow(ttlMs: settings.ttlMs, reason: "acl_nomatch")
        case .deny: return .deny("acl_nomatch", ttlMs: settings.ttlMs)
        case .ignore: return .ignore
        }
    }

    static let aclFields: [(String, EmqttdACL.Access)] = [("publish", .publish), ("subscribe", .subscribe), ("pubsub", .pubsub)]

    /// The allow rules of every ACL document: each topic of `publish`, `subscribe` and
    /// `pubsub` (a missing or null list: none). A list that is not an array of strings, or
    /// more than `max_rows` documents, is `bad`: nothing is decided on part of a user's ACL.
    func aclRules(_ docs: [MongoDocument]) -> Read<[EmqttdACL.Rule]> {
        guard docs.count <= settings.maxRows else {
            return .bad("more than max_rows (\(settings.maxRows)) documents")
        }
        var rules: [EmqttdACL.Rule] = []
        for (n, doc) in docs.enumerated() {
            if let why = doc.overLimit(maxElements: settings.maxRows, maxStringBytes: settings.maxFieldBytes) {
                return .bad("document \(n + 1): \(why)")
            }
            for (field, access) in Self.aclFields {
                switch doc[field] {
                case nil, .null?:
                    continue
                case .array(let topics)?:
                    var list: [String] = []
                    for (i, t) in topics.enumerated() {
                        guard case .string(let s) = t else {
                            return .bad("document \(n + 1): \(field).\(i) is \(t.typeName), not a string")
                        }
                        if !s.isEmpty { list.append(s) }
                    }
                    if !list.isEmpty { rules.append(EmqttdACL.Rule(allow: true, who: .all, access: access, topics: list)) }
                case let v?:
                    return .bad("document \(n + 1): \(field) is \(v.typeName), not an array of topics")
                }
            }
        }
        return .ok(rules)
    }

    // MARK: Logs

    /// Logs a failed find (at debug while MongoDB is known to be down: the pool logged that
    /// once) and returns the reason for the broker.
    func failed(_ query: String, _ error: any Error, _ client: IPCClient) -> String {
        let level: Logger.Level
        switch error as? BackendError {
        case .unavailable?, .overloaded?: level = .debug
        default: level = .warning
        }
        logger.log(level: level, "\(query) failed: \(error)", metadata: ["mqtt.client_id": "\(client.clientId)"])
        return "\(query): \(error)"
    }

    /// Logs a stored document the plugin cannot use (at warning: someone has to fix the data)
    /// and returns the reason for the broker.
    func bad(_ query: String, _ why: String, _ client: IPCClient) -> String {
        logger.warning("\(query): unusable document: \(why)",
                       metadata: ["mqtt.client_id": "\(client.clientId)", "mqtt.username": "\(client.username ?? "")"])
        return "\(query): \(why)"
    }
}
