import AuthBackends
import Logging
import SidecarKit

/// emqttd_auth_mysql / emqttd_auth_pgsql decisions over a `SQLDatabase`:
/// - CONNECT: `authquery` (no row: ignore; a wrong or missing password: deny), then
///   `superquery` for `is_superuser`;
/// - PUBLISH / SUBSCRIBE: `aclquery` rows as emqttd ACL rules, first match decides,
///   `acl_nomatch` when none does;
/// - a database error, timeout or outage: error (the broker's cache and fallback decide).
public struct SQLAuthService: Sendable {
    public let settings: SQLSettings
    public let database: any SQLDatabase
    public let logger: Logger

    public init(settings: SQLSettings, database: any SQLDatabase, logger: Logger) {
        self.settings = settings
        self.database = database
        self.logger = logger
    }

    static func values(_ c: IPCClient, password: [UInt8]? = nil) -> PlaceholderValues {
        PlaceholderValues(c, password: password)
    }

    func parameters(_ q: PreparedQuery, _ v: PlaceholderValues) -> [[UInt8]?] { q.parameters.map { v[$0] } }

    public func authenticate(_ request: AuthnRequest) async -> AuthnAnswer {
        guard let authQuery = settings.authQuery else { return .ignore }
        // emqttd: no username, nothing to look up.
        guard request.client.username != nil else { return .ignore }
        let values = Self.values(request.client, password: request.password)
        let check = settings.passwordHash
        let password = request.password
        let result: SQLResult
        var superResult: Result<SQLResult, BackendError>?
        do {
            if !check.isSlow, let superQuery = settings.superQuery, let password {
                // A digest is cheap: checked while the connection is held, and superquery asked
                // on it right away (one pool round trip per CONNECT instead of two).
                (result, superResult) = try await database.run(
                    .auth, parameters: parameters(authQuery, values), then: .superuser,
                    parameters: parameters(superQuery, values)) { r in
                        guard let (stored, salt) = Self.credentials(r, check) else { return false }
                        return check.verify(password, stored: stored, salt: salt)
                    }
            } else {
                result = try await database.run(.auth, parameters: parameters(authQuery, values))
            }
        } catch {
            return .error(failed("authquery", error, request.client))
        }
        guard !result.rows.isEmpty else { return .ignore }
        guard let (stored, salt) = Self.credentials(result, check) else { return .error("authquery returned no column") }
        guard let password else { return .deny("no password", ttlMs: settings.ttlMs) }
        guard await check.verifyOffloaded(password, stored: stored, salt: salt) else { return .deny("bad password", ttlMs: settings.ttlMs) }
        let superuser: Bool
        if let superResult {
            superuser = superuserAnswer(superResult, request.client)
        } else {
            superuser = await isSuperuser(values, request.client)
        }
        return .allow(superuser: superuser, ttlMs: settings.ttlMs, reason: "authquery")
    }

    /// The stored password and salt of the first row (`password` and `salt` by name, else the
    /// first and second columns); nil when there is no row or no column.
    static func credentials(_ r: SQLResult, _ check: PasswordCheck) -> (String?, String?)? {
        guard let row = r.rows.first, let pi = r.index(of: "password", orPosition: 0), pi < row.count else { return nil }
        let si = check.usesSalt ? r.index(of: "salt", orPosition: 1) : nil
        return (row[pi], si.flatMap { $0 < row.count ? row[$0] : nil })
    }

    /// `superquery`'s first column of its first row: 1 / true / t is a superuser; anything
    /// else, no row or an error is a normal user.
    func isSuperuser(_ values: PlaceholderValues, _ client: IPCClient) async -> Bool {
        guard let q = settings.superQuery else { return false }
        do {
            return superuserAnswer(.success(try await database.run(.superuser, parameters: parameters(q, values))), client)
        } catch {
            return superuserAnswer(.failure(error as? BackendError ?? .query("\(error)")), client)
        }
    }

    func superuserAnswer(_ r: Result<SQLResult, BackendError>, _ client: IPCClient) -> Bool {
        switch r {
        case .success(let r):
            guard let v = r.rows.first?.first ?? nil else { return false }
            return ["1", "t", "true", "y", "yes", "on"].contains(v.lowercased())
        case .failure(let e):
            _ = failed("superquery", e, client)
            return false
        }
    }

    public func authorize(_ request: AuthzRequest) async -> AuthzAnswer {
        guard let aclQuery = settings.aclQuery else { return .ignore }
        let values = Self.values(request.client)
        let result: SQLResult
        do {
            result = try await database.run(.acl, parameters: parameters(aclQuery, values))
        } catch {
            return .error(failed("aclquery", error, request.client))
        }
        let rules = Self.rules(result, logger: logger)
        let c = EmqttdACL.Client(clientId: request.client.clientId, username: request.client.username,
                                 ipAddress: request.client.peerAddress)
        let action: EmqttdACL.Action = request.access == .publish ? .publish : .subscribe
        switch EmqttdACL.decide(rules, c, action, topic: request.topic) {
        case true?: return .allow(ttlMs: settings.ttlMs, reason: "aclquery")
        case false?: return .deny("aclquery", ttlMs: settings.ttlMs)
        case nil:
            switch settings.aclNomatch {
            case .allow: return .allow(ttlMs: settings.ttlMs, reason: "acl_nomatch")
            case .deny: return .deny("acl_nomatch", ttlMs: settings.ttlMs)
            case .ignore: return .ignore
            }
        }
    }

    /// Rows `allow, ipaddr, username, clientid, access, topic` (by name, else by position),
    /// in result order; a malformed row is skipped (logged at debug).
    static func rules(_ r: SQLResult, logger: Logger) -> [EmqttdACL.Rule] {
        let names = ["allow", "ipaddr", "username", "clientid", "access", "topic"]
        let idx = names.enumerated().map { r.index(of: $0.element, orPosition: $0.offset) }
        func col(_ row: [String?], _ i: Int) -> String? {
            guard let j = idx[i], j < row.count else { return nil }
            return row[j]
        }
        var rules: [EmqttdACL.Rule] = []
        for row in r.rows {
            do {
                rules.append(try EmqttdACL.rule(allow: col(row, 0).flatMap { Int($0) }, ipaddr: col(row, 1),
                                                username: col(row, 2), clientId: col(row, 3),
                                                access: col(row, 4).flatMap { Int($0) }, topic: col(row, 5)))
            } catch {
                logger.debug("aclquery row skipped: \(error)")
            }
        }
        return rules
    }

    /// Logs a failed query (at debug while the database is known to be down: the pool logged
    /// that once) and returns the reason for the broker.
    func failed(_ query: String, _ error: any Error, _ client: IPCClient) -> String {
        let level: Logger.Level
        switch error as? BackendError {
        case .unavailable?, .overloaded?: level = .debug
        default: level = .warning
        }
        logger.log(level: level, "\(query) failed: \(error)", metadata: ["mqtt.client_id": "\(client.clientId)"])
        return "\(query): \(error)"
    }
}
