import AuthBackends
import AuthLDAP
import Logging
import SidecarKit
import SwiftletIPC
import XCTest

/// The plugin's decisions over a fake directory: DN -> password for binds, filter -> entries
/// for searches, every operation recorded.
final class LDAPAuthTests: XCTestCase {
    actor FakeDirectory: LDAPDirectory {
        var passwords: [String: String] = [:]
        var results: [String: LDAPSearchResult] = [:]
        var bindCode: LDAPResultCode?
        var down = false
        var binds: [String] = []
        var searches: [LDAPSearch] = []

        func setPassword(_ dn: String, _ pw: String) { passwords[dn] = pw }
        func setResult(_ filter: String, _ r: LDAPSearchResult) { results[filter] = r }
        func setBindCode(_ c: LDAPResultCode?) { bindCode = c }
        func setDown(_ d: Bool) { down = d }

        func bind(dn: String, password: [UInt8]) async throws -> LDAPBindResult {
            binds.append(dn)
            if down { throw BackendError.unavailable("down") }
            if let bindCode { return LDAPBindResult(bindCode, message: "said the server") }
            guard let pw = passwords[dn], Array(pw.utf8) == password else { return LDAPBindResult(.invalidCredentials) }
            return LDAPBindResult(.success)
        }

        func search(_ search: LDAPSearch) async throws -> LDAPSearchResult {
            searches.append(search)
            if down { throw BackendError.unavailable("down") }
            return results[search.filter] ?? LDAPSearchResult(entries: [])
        }
    }

    let directory = FakeDirectory()
    static let people = "ou=People,dc=example,dc=com"

    func auth(_ toml: String) throws -> LDAPAuth {
        let s = try AuthLDAPSettings(PluginConfig(string: "[auth_ldap]\n" + toml))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return LDAPAuth(settings: s, directory: directory, logger: logger)
    }

    let bindMode = "user_dn = \"uid=$u,\(people)\"\nttl_ms = 5000"
    let searchMode = """
        bind_dn = "cn=swiftlet,dc=example,dc=com"
        bind_password = "svc"
        base_dn = "\(people)"
        filter = "(&(objectClass=posixAccount)(uid=%u))"
        superuser_group = "cn=admins,dc=example,dc=com"
        publish_attribute = "mqttPublishTopic"
        subscribe_attribute = "mqttSubscribeTopic"
        pubsub_attribute = "mqttPubSubTopic"
        """

    func client(_ user: String?, id: String = "c1") -> IPCClient {
        IPCClient(clientId: id, username: user, peerAddress: "10.0.0.1", peerPort: 1, protocolLevel: 4, listener: "tcp")
    }

    func authn(_ a: LDAPAuth, _ user: String?, _ pw: String?, id: String = "c1") async -> AuthnAnswer {
        await a.authenticate(AuthnRequest(client: client(user, id: id), password: pw.map { Array($0.utf8) }))
    }

    // MARK: bind mode

    func testBindModeAllowDenyIgnore() async throws {
        let a = try auth(bindMode)
        await directory.setPassword("uid=alice,\(Self.people)", "pw")
        let ok = await authn(a, "alice", "pw")
        XCTAssertEqual(ok.decision, .allow)
        XCTAssertFalse(ok.superuser)
        XCTAssertEqual(ok.ttlMs, 5000)
        let wrong = await authn(a, "alice", "nope"), unknown = await authn(a, "bob", "pw")
        XCTAssertEqual(wrong.decision, .deny)
        XCTAssertEqual(unknown.decision, .deny)        // LDAP answers invalidCredentials for both
        let anonymous = await authn(a, nil, "pw")
        XCTAssertEqual(anonymous.decision, .ignore)
    }

    func testEmptyOrMissingPasswordIsDeniedWithoutABind() async throws {
        let a = try auth(bindMode)
        await directory.setPassword("uid=alice,\(Self.people)", "pw")
        let empty = await authn(a, "alice", ""), missing = await authn(a, "alice", nil)
        XCTAssertEqual(empty.decision, .deny)
        XCTAssertEqual(missing.decision, .deny)
        let binds = await directory.binds
        XCTAssertEqual(binds, [])
    }

    func testBindModeEscapesTheUsernameIntoOneRDNValue() async throws {
        let a = try auth(bindMode)
        let names: [(String, String)] = [
            ("a,ou=Admins", "a\\,ou\\=Admins"), ("x+cn=y", "x\\+cn\\=y"), ("\"q\"", "\\\"q\\\""), ("back\\slash", "back\\\\slash"),
            ("#0405616c696365", "\\#0405616c696365"), (" sp ", "\\ sp\\ "), ("nul\u{0}x", "nul\\00x"), ("*", "*"),
        ]
        for (name, _) in names { _ = await authn(a, name, "pw") }
        let binds = await directory.binds
        XCTAssertEqual(binds, names.map { "uid=\($0.1),\(Self.people)" })
    }

    func testBindModeServerProblemsAreErrorsAndRefusalsDenials() async throws {
        let a = try auth(bindMode)
        for (code, decision) in [(LDAPResultCode.busy, IPCDecision.error), (.unavailable, .error), (LDAPResultCode(80), .error),
                                 (.invalidDNSyntax, .deny), (.unwillingToPerform, .deny), (.insufficientAccessRights, .deny)] {
            await directory.setBindCode(code)
            let r = await authn(a, "alice", "pw")
            XCTAssertEqual(r.decision, decision, "\(code)")
        }
        await directory.setBindCode(nil)
        await directory.setDown(true)
        let down = await authn(a, "alice", "pw")
        XCTAssertEqual(down.decision, .error)
        XCTAssertEqual(down.ttlMs, 0)
    }

    // MARK: search mode

    func entry(_ uid: String, _ attrs: [String: [String]] = [:]) -> LDAPEntry {
        LDAPEntry(dn: "uid=\(LDAPEscape.dnValue(uid)),\(Self.people)",
                  attributes: attrs.mapValues { $0.map { Array($0.utf8) } })
    }

    func filter(_ uid: String) -> String { "(&(objectClass=posixAccount)(uid=\(LDAPEscape.filterValue(uid))))" }

    func testSearchModeFindsBindsAndAsksTheGroup() async throws {
        let a = try auth(searchMode)
        await directory.setResult(filter("alice"), LDAPSearchResult(entries: [entry("alice")]))
        await directory.setPassword("uid=alice,\(Self.people)", "pw")
        let ok = await authn(a, "alice", "pw")
        XCTAssertEqual(ok.decision, .allow)
        XCTAssertFalse(ok.superuser)
        let searches = await directory.searches
        XCTAssertEqual(searches.first, LDAPSearch(base: Self.people, scope: .sub, filter: filter("alice"), sizeLimit: 2))
        XCTAssertEqual(searches.last, LDAPSearch(
            base: "cn=admins,dc=example,dc=com", scope: .base,
            filter: "(|(member=uid=alice,\(Self.people))(uniqueMember=uid=alice,\(Self.people))(memberUid=alice))", sizeLimit: 1))
        let binds = await directory.binds
        XCTAssertEqual(binds, ["uid=alice,\(Self.people)"])
    }

    func testSuperuserGroupMembership() async throws {
        let a = try auth(searchMode)
        await directory.setResult(filter("root"), LDAPSearchResult(entries: [entry("root")]))
        await directory.setPassword("uid=root,\(Self.people)", "pw")
        let groupFilter = "(|(member=uid=root,\(Self.people))(uniqueMember=uid=root,\(Self.people))(memberUid=root))"
        await directory.setResult(groupFilter, LDAPSearchResult(entries: [LDAPEntry(dn: "cn=admins,dc=example,dc=com")]))
        let ok = await authn(a, "root", "pw")
        XCTAssertEqual(ok.decision, .allow)
        XCTAssertTrue(ok.superuser)
        let wrong = await authn(a, "root", "bad")
        XCTAssertEqual(wrong.decision, .deny)
        XCTAssertFalse(wrong.superuser)
    }

    func testSearchModeNoEntryIgnoresOrDeniesAndManyDenies() async throws {
        let a = try auth(searchMode)
        let none = await authn(a, "nobody", "pw")
        XCTAssertEqual(none.decision, .ignore)
        let d = try auth(searchMode + "\nunknown_user = \"deny\"")
        let denied = await authn(d, "nobody", "pw")
        XCTAssertEqual(denied.decision, .deny)
        await directory.setResult(filter("twice"), LDAPSearchResult(entries: [entry("twice"), entry("twice2")], truncated: true))
        let many = await authn(a, "twice", "pw")
        XCTAssertEqual(many.decision, .deny)
        let binds = await directory.binds
        XCTAssertEqual(binds, [])
    }

    func testSearchModeFilterInjectionStaysOneValue() async throws {
        let a = try auth(searchMode)
        for name in ["*", "*)(uid=*", "x)(|(objectClass=*)", "\\", "nul\u{0}"] { _ = await authn(a, name, "pw") }
        let filters = await directory.searches.map(\.filter)
        XCTAssertEqual(filters, [
            "(&(objectClass=posixAccount)(uid=\\2a))",
            "(&(objectClass=posixAccount)(uid=\\2a\\29\\28uid=\\2a))",
            "(&(objectClass=posixAccount)(uid=x\\29\\28|\\28objectClass=\\2a\\29))",
            "(&(objectClass=posixAccount)(uid=\\5c))",
            "(&(objectClass=posixAccount)(uid=nul\\00))",
        ])
    }

    func testSearchModeEmptyPasswordOfAKnownUserIsDeniedWithoutABind() async throws {
        let a = try auth(searchMode)
        await directory.setResult(filter("alice"), LDAPSearchResult(entries: [entry("alice")]))
        let r = await authn(a, "alice", "")
        XCTAssertEqual(r.decision, .deny)
        let binds = await directory.binds
        XCTAssertEqual(binds, [])
    }

    func testSearchModeErrors() async throws {
        let a = try auth(searchMode)
        await directory.setResult(filter("gone"), LDAPSearchResult(entries: [], noSuchBase: true))
        let noBase = await authn(a, "gone", "pw")
        XCTAssertEqual(noBase.decision, .error)
        await directory.setDown(true)
        let down = await authn(a, "alice", "pw")
        XCTAssertEqual(down.decision, .error)
    }

    // MARK: ACL attributes

    func authz(_ a: LDAPAuth, _ user: String?, _ access: IPCAccess, _ topic: String, id: String = "c1") async -> AuthzAnswer {
        await a.authorize(AuthzRequest(client: client(user, id: id), access: access, topic: topic))
    }

    func testACLAttributesWithPlaceholdersAndNomatch() async throws {
        let a = try auth(searchMode)
        await directory.setResult(filter("alice"), LDAPSearchResult(entries: [entry("alice", [
            "mqttpublishtopic": ["sensors/%u/#"], "mqttsubscribetopic": ["cmd/%c"], "mqttpubsubtopic": ["chat/#", ""],
        ])]))
        let cases: [(IPCAccess, String, IPCDecision)] = [
            (.publish, "sensors/alice/t", .allow), (.publish, "sensors/bob/t", .deny), (.subscribe, "sensors/alice/t", .deny),
            (.subscribe, "cmd/dev-1", .allow), (.publish, "cmd/dev-1", .deny), (.subscribe, "cmd/+", .deny),
            (.publish, "chat/x", .allow), (.subscribe, "chat/#", .allow), (.publish, "elsewhere", .deny),
        ]
        for (access, topic, decision) in cases {
            let r = await authz(a, "alice", access, topic, id: "dev-1")
            XCTAssertEqual(r.decision, decision, "\(access) \(topic)")
        }
        let searches = await directory.searches
        XCTAssertEqual(searches.first?.attributes, ["mqttPublishTopic", "mqttSubscribeTopic", "mqttPubSubTopic"])
        let allowing = try auth(searchMode + "\nacl_nomatch = \"allow\"")
        let nomatch = await authz(allowing, "alice", .publish, "elsewhere")
        XCTAssertEqual(nomatch.decision, .allow)
    }

    func testACLUnknownUserIgnoresAndAnonymousIgnores() async throws {
        let a = try auth(searchMode)
        let unknown = await authz(a, "nobody", .publish, "t")
        let anonymous = await authz(a, nil, .publish, "t")
        XCTAssertEqual(unknown.decision, .ignore)
        XCTAssertEqual(anonymous.decision, .ignore)
    }

    func testACLTooManyValuesIsAnError() async throws {
        let a = try auth(searchMode)
        let many = (0...AuthLDAPSettings.maxACLValues).map { "t/\($0)" }
        await directory.setResult(filter("big"), LDAPSearchResult(entries: [entry("big", ["mqttpubsubtopic": many])]))
        let r = await authz(a, "big", .publish, "t/1")
        XCTAssertEqual(r.decision, .error)
    }

    func testBindModeAnswersNoACLQuestion() async throws {
        let a = try auth(bindMode)
        let r = await authz(a, "alice", .publish, "t")
        XCTAssertEqual(r.decision, .ignore)
        let searches = await directory.searches
        XCTAssertEqual(searches, [])
    }
}
