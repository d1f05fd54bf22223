import AuthBackends
import Logging
import SidecarKit
import SwiftletIPC

/// emqttd_auth_ldap's decisions, and search mode's, over an `LDAPDirectory` (the libldap pools
/// in the sidecar, a fake in unit tests).
///
/// - CONNECT without a username: ignore. With no or an empty password: deny, without asking the
///   server (a simple bind with a DN and an empty password is an *unauthenticated* bind, which
///   servers may answer with success: RFC 4513 5.1.2).
/// - Bind mode: bind as `user_dn` (the username RFC 4514-escaped): success allows; a refusal
///   (invalidCredentials, which LDAP also answers for an unknown DN, invalidDNSyntax, ...)
///   denies.
/// - Search mode: the service account searches `base_dn` with `filter` (values RFC 4515-escaped):
///   no entry is ignore (`unknown_user = "deny"`: deny), more than one is deny; one is bound
///   as; `superuser_group` decides superuser (asked while the bind runs).
/// - PUBLISH / SUBSCRIBE (search mode with ACL attributes): the entry's attribute values are
///   topic filters (emqttd's rule semantics, `%u`/`%c` literal); none matching: `acl_nomatch`.
/// - Server down, a timeout, busy/unavailable, a protocol error: `error` (the broker's cache and
///   fallback decide).
public struct LDAPAuth: Sendable {
    public let settings: AuthLDAPSettings
    let directory: any LDAPDirectory
    let logger: Logger

    public init(settings: AuthLDAPSettings, directory: any LDAPDirectory, logger: Logger) {
        self.settings = settings
        self.directory = directory
        self.logger = logger
    }

    static func values(_ c: IPCClient) -> PlaceholderValues {
        PlaceholderValues(c)
    }

    /// `template` with each value escaped by `escape`; nil when a placeholder it uses has no
    /// value (an anonymous client and `%u`) or an empty one.
    static func render(_ template: PlaceholderTemplate, _ values: PlaceholderValues,
                       escape: ([UInt8]) -> [UInt8]) -> String? {
        for p in template.placeholders {
            guard let v = values[p], !v.isEmpty else { return nil }
        }
        return String(decoding: template.render(values, escape: escape), as: UTF8.self)
    }

    // MARK: Authentication

    public func authenticate(_ request: AuthnRequest) async -> AuthnAnswer {
        let client = request.client
        guard client.username != nil else { return .ignore }
        let values = Self.values(client)
        let password = request.password ?? []
        switch settings.mode {
        case .bind(let userDN, _):
            guard !password.isEmpty else { return .deny("empty password", ttlMs: settings.ttlMs) }
            guard let dn = Self.render(userDN, values, escape: LDAPEscape.dnValue) else {
                return .deny("no value for user_dn", ttlMs: settings.ttlMs)
            }
            return await bind(dn, password, client) ?? .allow(ttlMs: settings.ttlMs, reason: "bind")
        case .search(let m):
            let entry: LDAPEntry
            switch await findEntry(m, values, attributes: [], client) {
            case .failed(let why): return .error(why)
            case .none: return m.unknownUserDenies ? .deny("no entry", ttlMs: settings.ttlMs) : .ignore
            case .many: return .deny("more than one entry", ttlMs: settings.ttlMs)
            case .one(let e): entry = e
            }
            guard !password.isEmpty else { return .deny("empty password", ttlMs: settings.ttlMs) }
            // The group is read with the service account while the user's bind runs; its answer
            // is used only when the bind succeeded.
            async let superuser = isSuperuser(m, entry: entry, username: client.username ?? "", client)
            if let refused = await bind(entry.dn, password, client) { return refused }
            return .allow(superuser: await superuser, ttlMs: settings.ttlMs, reason: "search and bind")
        }
    }

    /// Binds as `dn`: nil on success, else the answer (deny on a refusal, error otherwise).
    private func bind(_ dn: String, _ password: [UInt8], _ client: IPCClient) async -> AuthnAnswer? {
        let result: LDAPBindResult
        do {
            result = try await directory.bind(dn: dn, password: password)
        } catch {
            return .error(failed("bind", error, client))
        }
        if result.code == .success { return nil }
        let detail = result.message.isEmpty ? "\(result.code)" : "\(result.code): \(result.message)"
        if result.code.refusesCredentials {
            // invalidDNSyntax for every user would be a bad user_dn: worth a warning.
            let level: Logger.Level = result.code == .invalidDNSyntax ? .warning : .debug
            logger.log(level: level, "bind refused: \(detail)", metadata: ["mqtt.client_id": "\(client.clientId)", "ldap.dn": "\(dn)"])
            return .deny("bind: \(result.code)", ttlMs: settings.ttlMs)
        }
        logger.warning("bind failed: \(detail)", metadata: ["mqtt.client_id": "\(client.clientId)"])
        return .error("bind: \(detail)")
    }

    private enum Found {
        case none, one(LDAPEntry), many, failed(String)
    }

    /// The entry `filter` finds under `base_dn` (asking for at most two).
    private func findEntry(_ m: LDAPSearchMode, _ values: PlaceholderValues, attributes: [String],
                           _ client: IPCClient) async -> Found {
        guard let filter = Self.render(m.filter, values, escape: LDAPEscape.filterValue) else { return .none }
        let result: LDAPSearchResult
        do {
            result = try await directory.search(LDAPSearch(base: m.baseDN, scope: m.scope, filter: filter,
                                                           attributes: attributes, sizeLimit: 2))
        } catch {
            return .failed(failed("search", error, client))
        }
        if result.noSuchBase {
            logger.warning("search failed: base_dn \(m.baseDN) does not exist", metadata: ["mqtt.client_id": "\(client.clientId)"])
            return .failed("search: base_dn \(m.baseDN) does not exist")
        }
        if result.entries.count > 1 || (result.truncated && !result.entries.isEmpty) {
            logger.warning("search found more than one entry: refused", metadata: ["mqtt.client_id": "\(client.clientId)", "ldap.filter": "\(filter)"])
            return .many
        }
        return result.entries.first.map { .one($0) } ?? .none
    }

    /// True when `superuser_group` lists the entry (`member`, `uniqueMember`) or the username
    /// (`memberUid`). A failed lookup leaves a normal user (logged), as emqttd's superquery.
    func isSuperuser(_ m: LDAPSearchMode, entry: LDAPEntry, username: String, _ client: IPCClient) async -> Bool {
        guard let group = m.superuserGroup else { return false }
        let dn = LDAPEscape.filterValue(entry.dn), uid = LDAPEscape.filterValue(username)
        let search = LDAPSearch(base: group, scope: .base, filter: "(|(member=\(dn))(uniqueMember=\(dn))(memberUid=\(uid)))",
                                sizeLimit: 1)
        do {
            let r = try await directory.search(search)
            if r.noSuchBase { logger.warning("superuser_group \(group) does not exist") }
            return !r.entries.isEmpty
        } catch {
            _ = failed("superuser_group search", error, client)
            return false
        }
    }

    // MARK: Authorization

    public func authorize(_ request: AuthzRequest) async -> AuthzAnswer {
        guard let m = settings.search, !m.aclAttributes.isEmpty else { return .ignore }
        let c = request.client
        let entry: LDAPEntry
        switch await findEntry(m, Self.values(c), attributes: m.aclAttributes.map(\.name), c) {
        case .failed(let why): return .error(why)
        case .none: return .ignore
        case .many: return .deny("more than one entry", ttlMs: settings.ttlMs)
        case .one(let e): entry = e
        }
        let rules: [EmqttdACL.Rule]
        switch Self.rules(entry, m) {
        case .success(let r): rules = r
        case .failure(let why):
            logger.warning("ACL attributes refused: \(why)", metadata: ["mqtt.client_id": "\(c.clientId)"])
            return .error("acl: \(why)")
        }
        let client = EmqttdACL.Client(clientId: c.clientId, username: c.username, ipAddress: c.peerAddress)
        let action: EmqttdACL.Action = request.access == .publish ? .publish : .subscribe
        if EmqttdACL.decide(rules, client, action, topic: request.topic) == true {
            return .allow(ttlMs: settings.ttlMs, reason: "acl attribute")
        }
        switch settings.aclNomatch {
        case .allow: return .allow(ttlMs: settings.ttlMs, reason: "acl_nomatch")
        case .deny: return .deny("acl_nomatch", ttlMs: settings.ttlMs)
        case .ignore: return .ignore
        }
    }

    /// Each value of an ACL attribute is one allow rule for its access; values that are not
    /// UTF-8 or empty are skipped. More than `maxACLValues` values, or a longer value than
    /// `maxACLValueBytes`, is a failure: nothing is decided on part of a list.
    static func rules(_ entry: LDAPEntry, _ m: LDAPSearchMode) -> Result<[EmqttdACL.Rule], ACLAttributeError> {
        var rules: [EmqttdACL.Rule] = []
        var count = 0
        for (name, access) in m.aclAttributes {
            for v in entry.attributes[name.lowercased()] ?? [] {
                count += 1
                guard count <= AuthLDAPSettings.maxACLValues else { return .failure(.tooMany(AuthLDAPSettings.maxACLValues)) }
                guard v.count <= AuthLDAPSettings.maxACLValueBytes else { return .failure(.tooLong(name, v.count)) }
                guard let topic = String(validating: v, as: UTF8.self), !topic.isEmpty else { continue }
                rules.append(EmqttdACL.Rule(allow: true, who: .all, access: access, topics: [topic]))
            }
        }
        return .success(rules)
    }

    enum ACLAttributeError: Error, CustomStringConvertible {
        case tooMany(Int), tooLong(String, Int)
        var description: String {
            switch self {
            case .tooMany(let n): return "more than \(n) ACL values in the entry"
            case .tooLong(let a, let n): return "a \(a) value of \(n) bytes, over \(AuthLDAPSettings.maxACLValueBytes)"
            }
        }
    }

    /// Logs a failed operation (at debug while the server is known to be down: the pool logged
    /// that once) and returns the reason for the broker.
    func failed(_ what: String, _ error: any Error, _ client: IPCClient) -> String {
        let level: Logger.Level
        switch error as? BackendError {
        case .unavailable?, .overloaded?: level = .debug
        default: level = .warning
        }
        logger.log(level: level, "\(what) failed: \(error)", metadata: ["mqtt.client_id": "\(client.clientId)"])
        return "\(what): \(error)"
    }
}
