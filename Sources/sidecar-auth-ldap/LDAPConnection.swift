import AuthBackends
import AuthLDAP
import CLDAP
import Glibc

/// Why a connection could not be opened, in libldap's words (the pool logs it once when every
/// server is unreachable, and answers requests `error` with it meanwhile).
struct LDAPConnectError: Error, CustomStringConvertible {
    let description: String
}

/// One libldap connection. This file is the only one that touches libldap: it owns the `LDAP`
/// handle and every `LDAPMessage`, copies what the decisions need into Swift values, frees the
/// C memory at once, and turns libldap failures into `BackendError`s (`connectionLost`: the
/// pool closes the connection and opens a new one, to the first server that answers).
///
/// Operations are asynchronous libldap calls (`ldap_sasl_bind`, `ldap_search_ext`) waited for
/// with `ldap_result` and a timeout: an operation the server does not answer in `timeout` is
/// abandoned and the connection marked broken. A connection is used by one pool thread at a
/// time (ConnectionPool), hence `@unchecked Sendable`.
final class LDAPConnection: @unchecked Sendable {
    private let ld: OpaquePointer
    let server: LDAPServer
    private let timeout: Double
    private(set) var broken = false

    private init(_ ld: OpaquePointer, server: LDAPServer, timeout: Double) {
        self.ld = ld
        self.server = server
        self.timeout = timeout
    }

    /// A connection to the first of `settings.servers` that answers (in their order), after
    /// StartTLS when asked, bound as `bindAs` when given (the service account of search mode).
    static func open(_ settings: AuthLDAPSettings, bindAs: (dn: String, password: String)?) throws -> LDAPConnection {
        var failures: [String] = []
        for server in settings.servers {
            do {
                return try open(server, settings, bindAs: bindAs)
            } catch {
                failures.append("\(server): \(error)")
            }
        }
        throw LDAPConnectError(description: failures.joined(separator: "; "))
    }

    private static func open(_ server: LDAPServer, _ s: AuthLDAPSettings, bindAs: (dn: String, password: String)?) throws -> LDAPConnection {
        var handle: OpaquePointer?
        let uri = server.uri(ssl: s.ssl)
        let rc = ldap_initialize(&handle, uri)
        guard rc == LDAP_SUCCESS, let handle else {
            throw LDAPConnectError(description: "\(uri): \(text(rc))")
        }
        let c = LDAPConnection(handle, server: server, timeout: s.timeout)
        // libldap reports a failed TLS handshake or certificate check as "Can't contact LDAP
        // server" with no detail of its own: say what else it may mean.
        let tlsHint = "; a TLS handshake or certificate check that failed looks the same: check sslopts, and that the certificate names the server as written in servers"
        do {
            try c.configure(s)
            let rc = ldap_connect(handle)
            guard rc == LDAP_SUCCESS else {
                throw LDAPConnectError(description: c.failure("connect", rc) + (s.ssl && rc == LDAP_SERVER_DOWN ? tlsHint : ""))
            }
            if s.startTLS {
                let rc = ldap_start_tls_s(handle, nil, nil)
                guard rc == LDAP_SUCCESS else {
                    throw LDAPConnectError(description: c.failure("StartTLS", rc) + (rc == LDAP_CONNECT_ERROR || rc == LDAP_SERVER_DOWN ? tlsHint : ""))
                }
            }
            if let (dn, password) = bindAs {
                let r = try c.bind(dn: dn, password: Array(password.utf8))
                guard r.code == .success else {
                    throw LDAPConnectError(description: "bind as \(dn) refused: \(r.code)\(r.message.isEmpty ? "" : ": \(r.message)")")
                }
            }
            return c
        } catch {
            c.close()
            throw error
        }
    }

    /// LDAPv3, no referral chasing, the timeouts, and TLS options of this handle's own (a new
    /// TLS context, so that nothing is shared with other handles or global defaults).
    private func configure(_ s: AuthLDAPSettings) throws {
        var version = Int32(LDAP_VERSION3)
        try set(LDAP_OPT_PROTOCOL_VERSION, &version, "protocol version")
        try set(LDAP_OPT_REFERRALS, nil, "referrals off")
        var tv = Self.timeval(timeout)
        try set(LDAP_OPT_NETWORK_TIMEOUT, &tv, "network timeout")
        try set(LDAP_OPT_TIMEOUT, &tv, "timeout")
        guard s.ssl || s.startTLS else { return }
        var require = Int32(s.tls.verifyPeer ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER)
        try set(LDAP_OPT_X_TLS_REQUIRE_CERT, &require, "sslopts.verify")
        var minimum = Int32(SWIFTLET_LDAP_TLS1_2)
        try set(LDAP_OPT_X_TLS_PROTOCOL_MIN, &minimum, "TLS 1.2 minimum")
        if let f = s.tls.caCertFile { try set(LDAP_OPT_X_TLS_CACERTFILE, f, "sslopts.cacertfile") }
        if let f = s.tls.certFile { try set(LDAP_OPT_X_TLS_CERTFILE, f, "sslopts.certfile") }
        if let f = s.tls.keyFile { try set(LDAP_OPT_X_TLS_KEYFILE, f, "sslopts.keyfile") }
        var isServer: Int32 = 0
        try set(LDAP_OPT_X_TLS_NEWCTX, &isServer, "TLS context (sslopts: certfile, keyfile, cacertfile)")
    }

    private func set(_ option: Int32, _ value: UnsafeRawPointer?, _ what: String) throws {
        let rc = ldap_set_option(ld, option, value)
        guard rc == LDAP_OPT_SUCCESS else { throw LDAPConnectError(description: failure("setting \(what)", rc)) }
    }

    private func set(_ option: Int32, _ value: String, _ what: String) throws {
        try value.withCString { try set(option, $0, what) }
    }

    func close() { ldap_unbind_ext(ld, nil, nil) }

    // MARK: operations

    /// A simple bind. The server's answer is returned (success or why not); a broken connection
    /// or a timeout throws. An empty password is never sent (it would be an unauthenticated
    /// bind, RFC 4513 5.1.2): it is answered invalidCredentials here.
    func bind(dn: String, password: [UInt8]) throws -> LDAPBindResult {
        guard !password.isEmpty else { return LDAPBindResult(.invalidCredentials, message: "empty password, not sent") }
        guard !broken else { throw BackendError.connectionLost("\(server): broken") }
        var msgid: Int32 = 0
        let rc = password.withUnsafeBufferPointer { buf -> Int32 in
            let base = UnsafeMutableRawPointer(mutating: buf.baseAddress!).assumingMemoryBound(to: CChar.self)
            var cred = berval(bv_len: ber_len_t(buf.count), bv_val: base)
            return ldap_sasl_bind(ld, dn, nil, &cred, nil, nil, &msgid)   // mechanism nil: LDAP_SASL_SIMPLE
        }
        guard rc == LDAP_SUCCESS else { throw lost("bind", rc) }
        let res = try wait(msgid)
        defer { ldap_msgfree(res) }
        let (code, message) = try result(res)
        return LDAPBindResult(code, message: message)
    }

    /// A search; entries with the requested attributes (values copied as bytes). A result of
    /// sizeLimitExceeded is `truncated`, noSuchObject `noSuchBase`; other codes throw
    /// `BackendError.query`.
    func search(_ s: LDAPSearch) throws -> LDAPSearchResult {
        guard !broken else { throw BackendError.connectionLost("\(server): broken") }
        let names = s.attributes.isEmpty ? ["1.1"] : s.attributes
        var attrs: [UnsafeMutablePointer<CChar>?] = names.map { strdup($0) } + [nil]
        defer { attrs.forEach { free($0) } }
        let scope: Int32
        switch s.scope {
        case .base: scope = Int32(SWIFTLET_LDAP_SCOPE_BASE)
        case .one: scope = Int32(SWIFTLET_LDAP_SCOPE_ONELEVEL)
        case .sub: scope = Int32(SWIFTLET_LDAP_SCOPE_SUBTREE)
        }
        var tv = Self.timeval(timeout)
        var msgid: Int32 = 0
        let rc = ldap_search_ext(ld, s.base, scope, s.filter, &attrs, 0, nil, nil, &tv, Int32(s.sizeLimit), &msgid)
        if rc == LDAP_FILTER_ERROR { throw BackendError.query("search filter \(s.filter) refused by libldap: \(Self.text(rc))") }
        guard rc == LDAP_SUCCESS else { throw lost("search", rc) }
        let res = try wait(msgid)
        defer { ldap_msgfree(res) }
        var out = LDAPSearchResult(entries: [])
        var code = LDAPResultCode(-1)
        var message = ""
        var m = ldap_first_message(ld, res)
        while let msg = m {
            switch ldap_msgtype(msg) {
            case Int32(SWIFTLET_LDAP_RES_SEARCH_ENTRY):
                out.entries.append(entry(msg, s.attributes))
            case Int32(SWIFTLET_LDAP_RES_SEARCH_RESULT):
                (code, message) = try result(msg)
            default:    // references (referrals are not chased)
                break
            }
            m = ldap_next_message(ld, msg)
        }
        switch code {
        case .success: break
        case .sizeLimitExceeded: out.truncated = true
        case .noSuchObject: out.noSuchBase = true
        default: throw BackendError.query("search under \(s.base): \(code)\(message.isEmpty ? "" : ": \(message)")")
        }
        return out
    }

    /// Reads the root DSE: throws when the server does not answer.
    func ping() throws {
        _ = try search(LDAPSearch(base: "", scope: .base, filter: "(objectClass=*)", sizeLimit: 1))
    }

    // MARK: C details

    /// Waits for the whole answer to `msgid`; on timeout it is abandoned and the connection
    /// marked broken.
    private func wait(_ msgid: Int32) throws -> OpaquePointer {
        var tv = Self.timeval(timeout)
        var res: OpaquePointer?
        let rc = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, &res)
        if rc == 0 {
            ldap_abandon_ext(ld, msgid, nil, nil)
            broken = true
            throw BackendError.timeout("\(server): no answer in \(timeout) s")
        }
        guard rc > 0, let res else { throw lost("waiting for the answer", Self.option(ld, LDAP_OPT_RESULT_CODE)) }
        return res
    }

    /// The result code and diagnostic message of a result message (`free`: freed here too;
    /// the caller frees it otherwise).
    private func result(_ msg: OpaquePointer, free: Bool = false) throws -> (LDAPResultCode, String) {
        var code: Int32 = 0
        var matched: UnsafeMutablePointer<CChar>?
        var text: UnsafeMutablePointer<CChar>?
        let rc = ldap_parse_result(ld, msg, &code, &matched, &text, nil, nil, free ? 1 : 0)
        defer {
            if let matched { ldap_memfree(matched) }
            if let text { ldap_memfree(text) }
        }
        guard rc == LDAP_SUCCESS else { throw lost("reading the answer", rc) }
        return (LDAPResultCode(code), text.map { String(cString: $0) } ?? "")
    }

    private func entry(_ msg: OpaquePointer, _ names: [String]) -> LDAPEntry {
        var dn = ""
        if let p = ldap_get_dn(ld, msg) {
            dn = String(cString: p)
            ldap_memfree(p)
        }
        var attributes: [String: [[UInt8]]] = [:]
        for name in names {
            guard let values = ldap_get_values_len(ld, msg, name) else { continue }
            var out: [[UInt8]] = []
            var i = 0
            while let v = values[i] {
                let len = Int(v.pointee.bv_len)
                out.append(len == 0 ? [] : Array(UnsafeRawBufferPointer(start: v.pointee.bv_val, count: len)))
                i += 1
            }
            ldap_value_free_len(values)
            attributes[name.lowercased(), default: []] += out
        }
        return LDAPEntry(dn: dn, attributes: attributes)
    }

    /// A failed call: the connection is broken (the pool reconnects it); a timeout is one.
    private func lost(_ what: String, _ rc: Int32) -> BackendError {
        broken = true
        if rc == LDAP_TIMEOUT { return .timeout("\(server): \(what): no answer in \(timeout) s") }
        return .connectionLost(failure(what, rc))
    }

    /// "server: what: libldap's text (the diagnostic message)".
    private func failure(_ what: String, _ rc: Int32) -> String {
        var detail = ""
        var p: UnsafeMutablePointer<CChar>?
        if ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &p) == LDAP_OPT_SUCCESS, let p {
            detail = String(cString: p)
            ldap_memfree(p)
            if detail.hasPrefix("("), detail.hasSuffix(")") { detail = String(detail.dropFirst().dropLast()) }
        }
        return "\(what): \(Self.text(rc))\(detail.isEmpty ? "" : " (\(detail))")"
    }

    private static func option(_ ld: OpaquePointer, _ option: Int32) -> Int32 {
        var v: Int32 = 0
        _ = ldap_get_option(ld, option, &v)
        return v
    }

    private static func text(_ rc: Int32) -> String {
        ldap_err2string(rc).map { String(cString: $0) } ?? "error \(rc)"
    }

    private static func timeval(_ seconds: Double) -> Glibc.timeval {
        let s = max(seconds, 0.001)
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int((s - Double(Int(s))) * 1_000_000))
    }
}
