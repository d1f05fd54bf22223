@testable import SwiftletAuth
import SwiftletConfig
import MQTTCodec
import NIOCore
import NIOEmbedded
import NIOPosix
import XCTest
@testable import SwiftletCore

// AuthChain: ordered providers folded into one decision, through the DecisionCache, on an
// EmbeddedEventLoop (manual clock). Providers are fakes that record who was asked.

private struct ProviderDown: Error {}

/// A provider with scripted answers that records every question in a shared log.
private final class FakeProvider: AuthProvider, @unchecked Sendable {
    let name: String
    let order: Int
    let authenticates: Bool
    let authorizes: Bool
    var authn: ProviderAnswer
    var authz: ProviderAnswer
    /// When set, the provider's future fails (a broken connection, not an `.error` answer).
    var fails = false
    /// When set, every answer is this future (a slow backend the test completes later).
    var pending: EventLoopFuture<ProviderAnswer>?
    var authnCalls = 0
    var authzCalls = 0
    let log: Log
    /// Role-specific orders (a sidecar registering authn and authz with different orders).
    var roleOrders: [AuthRole: Int] = [:]

    func order(for role: AuthRole) -> Int { roleOrders[role] ?? order }

    final class Log { var names: [String] = [] }

    init(_ name: String, order: Int, log: Log = Log(), authenticates: Bool = true, authorizes: Bool = true,
         authn: ProviderDecision = .ignore, authz: ProviderDecision = .ignore) {
        self.name = name
        self.order = order
        self.log = log
        self.authenticates = authenticates
        self.authorizes = authorizes
        self.authn = ProviderAnswer(authn)
        self.authz = ProviderAnswer(authz)
    }

    func authenticate(_ client: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        authnCalls += 1
        return answer(authn, loop)
    }

    func authorize(_ client: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        authzCalls += 1
        return answer(authz, loop)
    }

    private func answer(_ a: ProviderAnswer, _ loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        log.names.append(name)
        if let pending { return pending }
        return fails ? loop.makeFailedFuture(ProviderDown()) : loop.makeSucceededFuture(a)
    }
}

final class AuthChainTests: XCTestCase {
    var loop: EmbeddedEventLoop!
    let alice = ClientInfo(clientId: "c-alice", username: "alice", peerAddress: "10.1.2.3")
    let anon = ClientInfo(clientId: "c-anon", username: nil, peerAddress: "10.1.2.4")

    override func setUp() {
        loop = EmbeddedEventLoop()
    }

    override func tearDown() {
        try? loop.syncShutdownGracefully()
    }

    private func chain(allowAnonymous: Bool = false, _ configure: (inout AuthConfig) -> Void = { _ in }) -> AuthChain {
        var cfg = AuthConfig()
        configure(&cfg)
        return AuthChain(config: cfg, allowAnonymous: allowAnonymous, logger: quietLogger())
    }

    private func connect(_ ch: AuthChain, _ c: ClientInfo, _ password: String? = "pw") throws -> AuthnResult {
        try settled(ch.authenticate(c, password: password.map { Array($0.utf8) }, on: loop), loop)
    }

    private func acl(_ ch: AuthChain, _ c: ClientInfo, _ access: ACLAccess = .publish, _ topic: String = "a/b") throws -> ACLAnswer {
        try settled(ch.authorize(c, access: access, topic: topic, on: loop), loop)
    }

    // MARK: order and folding

    func testProvidersAreAskedInAscendingOrder() throws {
        let log = FakeProvider.Log()
        let ch = chain()
        let c = FakeProvider("c", order: 300, log: log, authn: .allow(superuser: false), authz: .allow(superuser: false))
        let a = FakeProvider("a", order: 100, log: log)
        let b2 = FakeProvider("b2", order: 200, log: log)
        let b1 = FakeProvider("b1", order: 200, log: log)  // same order: by name
        for p in [c, b2, a, b1] { ch.add(p) }
        XCTAssertEqual(ch.providers.map(\.name), ["a", "b1", "b2", "c"])

        let r = try connect(ch, alice)
        XCTAssertEqual(log.names, ["a", "b1", "b2", "c"], "each ignore passes to the next")
        XCTAssertEqual(r, AuthnResult(allowed: true, superuser: false, provider: "c", reason: ""))

        log.names = []
        XCTAssertTrue(try acl(ch, alice).allowed)
        XCTAssertEqual(log.names, ["a", "b1", "b2", "c"])
    }

    func testAddingAProviderWithTheSameNameReplacesIt() throws {
        let ch = chain()
        ch.add(FakeProvider("side", order: 100, authn: .deny(reason: "old")))
        ch.add(FakeProvider("side", order: 50, authn: .allow(superuser: false)))
        XCTAssertEqual(ch.providers.count, 1)
        XCTAssertTrue(try connect(ch, alice).allowed)
        ch.remove(named: "side")
        XCTAssertTrue(ch.providers.isEmpty)
    }

    func testFirstAllowDecides() throws {
        let ch = chain()
        let first = FakeProvider("first", order: 1, authn: .allow(superuser: false), authz: .allow(superuser: false))
        let second = FakeProvider("second", order: 2, authn: .deny(reason: "no"), authz: .deny(reason: "no"))
        ch.add(first)
        ch.add(second)
        XCTAssertEqual(try connect(ch, alice).provider, "first")
        XCTAssertTrue(try connect(ch, alice, "other").allowed)
        XCTAssertTrue(try acl(ch, alice).allowed)
        XCTAssertEqual(second.authnCalls + second.authzCalls, 0, "nobody after the decider is asked")
    }

    func testFirstDenyDecides() throws {
        let ch = chain(allowAnonymous: true)
        let first = FakeProvider("first", order: 1, authn: .ignore, authz: .ignore)
        let second = FakeProvider("second", order: 2, authn: .deny(reason: "bad password"), authz: .deny(reason: "acl"))
        let third = FakeProvider("third", order: 3, authn: .allow(superuser: true), authz: .allow(superuser: false))
        for p in [first, second, third] { ch.add(p) }
        let r = try connect(ch, alice)
        XCTAssertEqual(r, AuthnResult(allowed: false, superuser: false, provider: "second", reason: "bad password"))
        XCTAssertFalse(try acl(ch, alice).allowed)
        XCTAssertEqual(third.authnCalls + third.authzCalls, 0)
        XCTAssertEqual(first.authnCalls, 1)
    }

    func testProvidersThatDoNotAuthenticateOrAuthorizeAreSkipped() throws {
        let ch = chain()
        let aclOnly = FakeProvider("acl-only", order: 1, authenticates: false, authn: .deny(reason: "x"), authz: .deny(reason: "x"))
        let authnOnly = FakeProvider("authn-only", order: 2, authorizes: false, authn: .allow(superuser: false),
                                     authz: .allow(superuser: false))
        ch.add(aclOnly)
        ch.add(authnOnly)
        XCTAssertEqual(try connect(ch, alice).provider, "authn-only")
        XCTAssertFalse(try acl(ch, alice).allowed)
        XCTAssertEqual(aclOnly.authnCalls, 0)
        XCTAssertEqual(authnOnly.authzCalls, 0)
    }

    func testSuperuserFlagIsPassedThrough() throws {
        let ch = chain()
        let p = FakeProvider("p", order: 1, authn: .allow(superuser: true))
        ch.add(p)
        let r = try connect(ch, alice)
        XCTAssertTrue(r.allowed)
        XCTAssertTrue(r.superuser)
        p.authn = ProviderAnswer(.allow(superuser: false))
        XCTAssertFalse(try connect(ch, ClientInfo(clientId: "other", username: "bob", peerAddress: "10.0.0.9")).superuser)
    }

    // MARK: nobody decides

    func testUndecidedConnectFollowsAllowAnonymous() throws {
        for allow in [false, true] {
            let ch = chain(allowAnonymous: allow)
            ch.add(FakeProvider("p", order: 1))
            let r = try connect(ch, anon, nil)
            XCTAssertEqual(r.allowed, allow)
            XCTAssertFalse(r.superuser)
            XCTAssertEqual(r.provider, "")
        }
        // No providers at all.
        XCTAssertTrue(try connect(chain(allowAnonymous: true), anon, nil).allowed)
        XCTAssertFalse(try connect(chain(allowAnonymous: false), anon, nil).allowed)
    }

    func testUndecidedACLFollowsAclNomatch() throws {
        let deny = chain()
        deny.add(FakeProvider("p", order: 1))
        XCTAssertEqual(try acl(deny, alice), ACLAnswer(allowed: false, ttl: .seconds(5)), "default: deny, cached as a deny")

        let allow = chain { $0.aclNomatchAllow = true }
        allow.add(FakeProvider("p", order: 1))
        XCTAssertEqual(try acl(allow, alice), ACLAnswer(allowed: true, ttl: .seconds(60)))
    }

    // MARK: errors and the fallback

    func testErrorAppliesDenyFallbackByDefaultAndIsNotCached() throws {
        let ch = chain()
        let broken = FakeProvider("broken", order: 1, authn: .error("database down"), authz: .error("database down"))
        let later = FakeProvider("later", order: 2, authn: .allow(superuser: true), authz: .allow(superuser: false))
        ch.add(broken)
        ch.add(later)

        let r = try connect(ch, alice)
        XCTAssertFalse(r.allowed)
        XCTAssertFalse(r.superuser)
        XCTAssertEqual(r.provider, "broken")
        XCTAssertTrue(r.reason.contains("database down"), r.reason)
        XCTAssertEqual(try acl(ch, alice), ACLAnswer(allowed: false, ttl: .zero), "fallback answers carry ttl 0")
        XCTAssertEqual(later.authnCalls + later.authzCalls, 0, "an error decides: the fallback, not the next provider")

        XCTAssertFalse(try connect(ch, alice).allowed)
        XCTAssertFalse(try acl(ch, alice).allowed)
        XCTAssertEqual(broken.authnCalls, 2, "errors are not cached")
        XCTAssertEqual(broken.authzCalls, 2)
        XCTAssertEqual(ch.authnCache.count + ch.authzCache.count, 0)

        // Back up: the next question is answered for real.
        broken.authn = ProviderAnswer(.allow(superuser: false))
        XCTAssertTrue(try connect(ch, alice).allowed)
    }

    func testErrorAppliesAllowFallbackWhenConfigured() throws {
        let ch = chain { $0.fallbackAllow = true }
        let broken = FakeProvider("broken", order: 1, authn: .error("timed out"), authz: .error("timed out"))
        ch.add(broken)
        let r = try connect(ch, alice)
        XCTAssertTrue(r.allowed)
        XCTAssertFalse(r.superuser, "the fallback never grants superuser")
        XCTAssertEqual(try acl(ch, alice), ACLAnswer(allowed: true, ttl: .zero))
        _ = try acl(ch, alice)
        XCTAssertEqual(broken.authzCalls, 2)
    }

    func testFailedProviderFutureIsAnError() throws {
        let ch = chain(allowAnonymous: true)
        let p = FakeProvider("p", order: 1, authn: .allow(superuser: false), authz: .allow(superuser: false))
        p.fails = true
        ch.add(p)
        XCTAssertFalse(try connect(ch, alice).allowed, "a failed future applies the fallback, not allow_anonymous")
        XCTAssertEqual(try acl(ch, alice), ACLAnswer(allowed: false, ttl: .zero))
        XCTAssertEqual(ch.stats("p").errors, 2)
    }

    // MARK: stats

    func testPerProviderStatsCountRequestsAndErrors() throws {
        let ch = chain()
        let a = FakeProvider("a", order: 1, authn: .ignore, authz: .ignore)
        let b = FakeProvider("b", order: 2, authn: .allow(superuser: false), authz: .error("timed out"))
        ch.add(a)
        ch.add(b)
        _ = try connect(ch, alice)
        _ = try acl(ch, alice, .publish, "x")
        _ = try acl(ch, alice, .subscribe, "y")
        XCTAssertEqual(ch.stats("a").requests, 3)
        XCTAssertEqual(ch.stats("a").errors, 0)
        XCTAssertEqual(ch.stats("b").requests, 3)
        XCTAssertEqual(ch.stats("b").errors, 2)
        XCTAssertEqual(ch.stats("b").timeouts, 2, "an error saying 'timed out' counts as a timeout")
        XCTAssertEqual(ch.stats("a").latency.reduce(0, +), 3, "every request lands in a latency bucket")
        XCTAssertEqual(Set(ch.allStats.keys), ["a", "b"])
        XCTAssertEqual(ch.stats("a").snapshot()["requests"] as? Int, 3)
    }

    func testAuthnAndAuthzOrdersAreIndependent() throws {
        let ch = chain()
        let log = FakeProvider.Log()
        // x authenticates first but authorizes last; y the other way round.
        let x = FakeProvider("x", order: 1, log: log, authn: .allow(superuser: false), authz: .deny(reason: "x"))
        x.roleOrders = [.authn: 1, .authz: 30]
        let y = FakeProvider("y", order: 2, log: log, authn: .deny(reason: "y"), authz: .allow(superuser: false))
        y.roleOrders = [.authn: 20, .authz: 2]
        ch.add(x)
        ch.add(y)
        XCTAssertTrue(try connect(ch, alice).allowed, "x answers CONNECT first")
        XCTAssertEqual(log.names, ["x"])
        XCTAssertTrue(try acl(ch, alice, .publish, "t").allowed, "y answers ACL first")
        XCTAssertEqual(log.names, ["x", "y"])
    }

    func testCacheHitsAreCountedForTheProviderThatDecided() throws {
        let ch = chain()
        let a = FakeProvider("a", order: 1, authn: .ignore, authz: .ignore)
        let b = FakeProvider("b", order: 2, authn: .allow(superuser: false), authz: .allow(superuser: false))
        ch.add(a)
        ch.add(b)
        _ = try connect(ch, alice)
        _ = try connect(ch, alice)
        _ = try connect(ch, alice)
        _ = try acl(ch, alice, .publish, "x")
        _ = try acl(ch, alice, .publish, "x")
        XCTAssertEqual(ch.stats("b").cacheHits, 3, "two cached CONNECTs and one cached ACL answer")
        XCTAssertEqual(ch.stats("a").cacheHits, 0, "a only ignored")
        XCTAssertEqual(ch.stats("b").requests, 2)
        XCTAssertEqual(ch.stats("b").snapshot(connectionHits: 4)["cache_hits"] as? Int, 7)
    }

    // MARK: caching through the chain

    func testCachedSecondLookupDoesNotReachTheProvider() throws {
        let ch = chain()
        let p = FakeProvider("p", order: 1, authn: .allow(superuser: true), authz: .allow(superuser: false))
        ch.add(p)
        XCTAssertTrue(try connect(ch, alice).superuser)
        XCTAssertTrue(try connect(ch, alice).superuser, "the cached verdict keeps the superuser flag")
        XCTAssertEqual(p.authnCalls, 1)
        XCTAssertEqual(ch.stats("p").requests, 1)

        // A different password is a different question.
        _ = try connect(ch, alice, "another")
        XCTAssertEqual(p.authnCalls, 2)

        _ = try acl(ch, alice, .publish, "t")
        _ = try acl(ch, alice, .publish, "t")
        XCTAssertEqual(p.authzCalls, 1)
        _ = try acl(ch, alice, .subscribe, "t")
        XCTAssertEqual(p.authzCalls, 2, "publish and subscribe are separate questions")
    }

    func testChainUsesAllowAndDenyTTLs() throws {
        let ch = chain { $0.allowTTL = .seconds(60); $0.denyTTL = .seconds(5) }
        let p = FakeProvider("p", order: 1, authz: .allow(superuser: false))
        ch.add(p)
        XCTAssertEqual(try acl(ch, alice, .publish, "ok"), ACLAnswer(allowed: true, ttl: .seconds(60)))
        p.authz = ProviderAnswer(.deny(reason: "no"))
        XCTAssertEqual(try acl(ch, alice, .publish, "no"), ACLAnswer(allowed: false, ttl: .seconds(5)))
        XCTAssertEqual(p.authzCalls, 2)

        loop.advanceTime(by: .seconds(5))
        p.authz = ProviderAnswer(.allow(superuser: false))
        XCTAssertTrue(try acl(ch, alice, .publish, "no").allowed, "the deny expired and was asked again")
        XCTAssertTrue(try acl(ch, alice, .publish, "ok").allowed)
        XCTAssertEqual(p.authzCalls, 3, "the allow was still cached")
    }

    func testProviderTTLOverridesTheDefault() throws {
        let ch = chain()
        let p = FakeProvider("p", order: 1)
        p.authz = ProviderAnswer(.allow(superuser: false), ttl: .seconds(2))
        p.authn = ProviderAnswer(.allow(superuser: false), ttl: .zero)
        ch.add(p)
        XCTAssertEqual(try acl(ch, alice), ACLAnswer(allowed: true, ttl: .seconds(2)))
        loop.advanceTime(by: .seconds(2))
        _ = try acl(ch, alice)
        XCTAssertEqual(p.authzCalls, 2)
        _ = try connect(ch, alice)
        _ = try connect(ch, alice)
        XCTAssertEqual(p.authnCalls, 2, "a provider's ttl 0 is not cached")
    }

    func testInvalidateDropsBothCachesByScope() throws {
        let ch = chain()
        let p = FakeProvider("p", order: 1, authn: .allow(superuser: false), authz: .allow(superuser: false))
        ch.add(p)
        let bob = ClientInfo(clientId: "c-bob", username: "bob", peerAddress: "10.0.0.2")
        for c in [alice, bob] {
            _ = try connect(ch, c)
            _ = try acl(ch, c)
        }
        XCTAssertEqual(ch.invalidate(.username("alice")), 2)
        _ = try connect(ch, alice)
        _ = try connect(ch, bob)
        XCTAssertEqual(p.authnCalls, 3, "only alice is asked again")
        XCTAssertEqual(ch.invalidate(.clientId("c-bob")), 2)
        XCTAssertEqual(ch.invalidate(.all), 1, "alice's new CONNECT answer")
        XCTAssertEqual(ch.authnCache.count + ch.authzCache.count, 0)
    }

    func testIdenticalConcurrentConnectsReachTheProviderOnce() throws {
        let ch = chain()
        let pending = loop.makePromise(of: ProviderAnswer.self)
        let slow = FakeProvider("slow", order: 1)
        slow.pending = pending.futureResult
        ch.add(slow)
        let connects = (0..<100).map { _ in ch.authenticate(alice, password: Array("pw".utf8), on: loop) }
        let acls = (0..<100).map { _ in ch.authorize(alice, access: .publish, topic: "a/b", on: loop) }
        loop.run()
        XCTAssertEqual(slow.authnCalls + slow.authzCalls, 2, "one CONNECT question and one ACL question")
        pending.succeed(ProviderAnswer(.allow(superuser: false)))
        for f in connects { XCTAssertTrue(try settled(f, loop).allowed) }
        for f in acls { XCTAssertTrue(try settled(f, loop).allowed) }
    }

    func testSynchronousRulesAnswerWithoutSharedCacheEntries() throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        defer { try? pool.syncShutdownGracefully() }
        let ch = chain()
        ch.add(BuiltinAuth(usersPath: nil, aclPath: nil, order: 1000, pool: pool))
        // emqttd's default rules: `#` is denied to subscribers, anything else allowed.
        XCTAssertEqual(ch.authorizeNow(alice, access: .subscribe, topic: "a/b")?.allowed, true)
        XCTAssertEqual(ch.authorizeNow(alice, access: .subscribe, topic: "#")?.allowed, false)
        XCTAssertEqual(ch.authorizeNow(alice, access: .publish, topic: "a/b")?.allowed, true)
        XCTAssertEqual(ch.authzCache.count, 0, "the rules answer faster than a cache entry is made (~250 B each)")
        XCTAssertEqual(ch.stats("builtin").requests, 3)
        // A rule change applies to the next question at once.
        (ch.providers.first as? BuiltinAuth)?.install(rules: [])
        XCTAssertEqual(ch.authorizeNow(alice, access: .subscribe, topic: "#")?.allowed,
                       AuthConfig().aclNomatchAllow, "no rule: acl_nomatch decides")
    }

    // MARK: the per-connection ACL cache (MQTTConnectionHandler+ACL)

    private func pubacks(_ c: TestClient) throws -> [PubAckPacket] {
        try c.packets().compactMap { if case .puback(let a) = $0 { return a }; return nil }
    }

    func testConnectionKeepsItsOwnACLAnswersUntilInvalidated() throws {
        let h = makeHarness()
        let p = FakeProvider("acl", order: 1, authenticates: false, authz: .allow(superuser: false))
        h.broker.auth.add(p)
        let c = try h.client(.v5)
        XCTAssertEqual(try c.connect("pc1")?.reasonCode, .success)

        try c.publish("x/1", "a", qos: .atLeastOnce)
        XCTAssertEqual(p.authzCalls, 1)
        let sharedHits = h.broker.auth.authzCache.hits
        try c.publish("x/1", "b", qos: .atLeastOnce)
        XCTAssertEqual(p.authzCalls, 1)
        XCTAssertEqual(h.broker.auth.authzCache.hits, sharedHits, "answered by the connection's own cache")
        let slot = h.broker.auth.stats("acl").slot
        let hits = h.ctx.stats.aclHits
        XCTAssertEqual(slot < hits.count ? hits[slot] : 0, 1, "the connection-cache hit is counted for its provider")

        h.broker.auth.invalidate(.all)
        p.authz = ProviderAnswer(.deny(reason: "revoked"))
        try c.publish("x/1", "c", qos: .atLeastOnce, packetId: 77)
        XCTAssertEqual(p.authzCalls, 2, "an invalidation drops the connection's cache too")
        let acks = try pubacks(c)
        XCTAssertEqual(acks.last?.packetId, 77)
        XCTAssertEqual(acks.last?.reasonCode, .notAuthorized)
    }

    func testConnectionDoesNotKeepTheFallback() throws {
        let h = makeHarness()
        let p = FakeProvider("acl", order: 1, authenticates: false, authz: .error("sidecar down"))
        h.broker.auth.add(p)
        let c = try h.client(.v5)
        XCTAssertEqual(try c.connect("pc2")?.reasonCode, .success)
        try c.publish("y/1", "a", qos: .atLeastOnce)
        try c.publish("y/1", "b", qos: .atLeastOnce)
        XCTAssertEqual(p.authzCalls, 2)
        p.authz = ProviderAnswer(.allow(superuser: false))
        _ = try c.packets()
        try c.publish("y/1", "c", qos: .atLeastOnce, packetId: 9)
        let acks = try pubacks(c)
        XCTAssertEqual(acks.count, 1)
        XCTAssertLessThan(acks[0].reasonCode.rawValue, 0x80, "the provider is back: allowed at once")
    }
}
