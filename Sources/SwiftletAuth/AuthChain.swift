import AuthBackends
import Atomics
import SwiftletConfig
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Per-provider counters (ctl `cache stats`, dashboard). Cache hits are the answers this
/// provider gave that were served from the broker's shared cache; hits in the connections' own
/// ACL caches are counted per event loop (`LoopStats.aclHits`, indexed by `slot`) and added
/// when read.
public final class ProviderStats: @unchecked Sendable {
    private let lock = NIOLock()
    /// Index of this provider's counters in per-loop arrays.
    public let slot: Int
    public private(set) var requests = 0
    public private(set) var cacheHits = 0
    public private(set) var timeouts = 0
    public private(set) var errors = 0
    public private(set) var restarts = 0
    /// Latency histogram: upper bounds in milliseconds, last bucket is everything above.
    public static let bucketsMs: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]
    public private(set) var latency = [Int](repeating: 0, count: ProviderStats.bucketsMs.count + 1)

    public func record(_ seconds: Double, timedOut: Bool = false, error: Bool = false) {
        lock.withLock {
            requests += 1
            if timedOut { timeouts += 1 }
            if error { errors += 1 }
            let ms = seconds * 1000
            latency[Self.bucketsMs.firstIndex { ms <= $0 } ?? Self.bucketsMs.count] += 1
        }
    }

    public init(slot: Int) { self.slot = slot }

    public func restarted() { lock.withLock { restarts += 1 } }
    public func cacheHit() { lock.withLock { cacheHits += 1 } }

    /// The counters; `connectionHits` are the per-loop connection-cache hits summed by the caller.
    public func snapshot(connectionHits: Int = 0) -> [String: Any] {
        lock.withLock {
            ["requests": requests, "timeouts": timeouts, "errors": errors, "restarts": restarts,
             "cache_hits": cacheHits + connectionHits, "shared_cache_hits": cacheHits,
             "connection_cache_hits": connectionHits,
             "latency_ms_buckets": Dictionary(uniqueKeysWithValues: zip(Self.bucketsMs.map { "le_\(Int($0))" } + ["inf"], latency))]
        }
    }
}

/// Ordered providers folded into one decision (mosquitto's defer loop, EMQX's hook fold):
/// the first provider that does not ignore decides; `error` applies the fallback uncached.
/// Authentication and authorization are kept apart; answers go through `DecisionCache`.
public final class AuthChain: @unchecked Sendable {
    public let config: AuthConfig
    /// `mqtt.allow_anonymous`; `reload config` may change it (read once per authentication).
    public var allowAnonymous: Bool { anonymousAllowed.load(ordering: .relaxed) }
    private let anonymousAllowed: ManagedAtomic<Bool>
    public let logger: Logger
    /// Every provider, and the ones asked for each question in that question's order: sorted
    /// when the chain changes, not on every question.
    private struct Lists {
        var all: [AuthProvider] = []
        var authn: [AuthProvider] = []
        var authz: [AuthProvider] = []

        mutating func sort() {
            all.sort { ($0.order, $0.name) < ($1.order, $1.name) }
            authn = all.filter(\.authenticates).sorted { ($0.order(for: .authn), $0.name) < ($1.order(for: .authn), $1.name) }
            authz = all.filter(\.authorizes).sorted { ($0.order(for: .authz), $0.name) < ($1.order(for: .authz), $1.name) }
        }
    }
    private let providersBox = NIOLockedValueBox(Lists())
    private let statsBox = NIOLockedValueBox<(byName: [String: ProviderStats], bySlot: [ProviderStats])>(([:], []))
    public let authnCache: DecisionCache<AuthnResult>
    public let authzCache: DecisionCache<ACLAnswer>

    public func setAllowAnonymous(_ allow: Bool) {
        anonymousAllowed.store(allow, ordering: .relaxed)
    }

    public init(config: AuthConfig, allowAnonymous: Bool, logger: Logger) {
        self.config = config
        self.anonymousAllowed = ManagedAtomic(allowAnonymous)
        self.logger = logger
        self.authnCache = DecisionCache(capacity: config.cacheSize)
        self.authzCache = DecisionCache(capacity: config.cacheSize)
    }

    public var providers: [AuthProvider] { providersBox.withLockedValue { $0.all } }

    public func add(_ p: AuthProvider) {
        providersBox.withLockedValue { lists in
            lists.all.removeAll { $0.name == p.name }
            lists.all.append(p)
            lists.sort()
        }
    }

    /// The providers asked for `role`, in ascending order for that role (a sidecar's authn
    /// and authz orders are independent).
    public func providers(for role: AuthRole) -> [AuthProvider] {
        providersBox.withLockedValue { role == .authn ? $0.authn : $0.authz }
    }

    public func remove(named name: String) {
        providersBox.withLockedValue { lists in
            lists.all.removeAll { $0.name == name }
            lists.sort()
        }
    }

    public func stats(_ name: String) -> ProviderStats {
        statsBox.withLockedValue { s in
            if let x = s.byName[name] { return x }
            let x = ProviderStats(slot: s.bySlot.count)
            s.byName[name] = x
            s.bySlot.append(x)
            return x
        }
    }

    public func stats(slot: Int) -> ProviderStats? {
        statsBox.withLockedValue { slot >= 0 && slot < $0.bySlot.count ? $0.bySlot[slot] : nil }
    }

    public var allStats: [String: ProviderStats] { statsBox.withLockedValue { $0.byName } }

    /// Drops cached answers (ctl, sidecar push, sidecar restart).
    @discardableResult
    public func invalidate(_ scope: DecisionCache<Bool>.Scope) -> Int {
        let s: DecisionCache<AuthnResult>.Scope
        switch scope {
        case .all: s = .all
        case .clientId(let c): s = .clientId(c)
        case .username(let u): s = .username(u)
        }
        let z: DecisionCache<ACLAnswer>.Scope
        switch scope {
        case .all: z = .all
        case .clientId(let c): z = .clientId(c)
        case .username(let u): z = .username(u)
        }
        return authnCache.invalidate(s) + authzCache.invalidate(z)
    }

    // MARK: Authentication

    /// The verdict when no provider decides a CONNECT: `mqtt.allow_anonymous`.
    private static func anonymous(_ allowed: Bool) -> AuthnResult {
        AuthnResult(allowed: allowed, superuser: false, provider: "",
                    reason: allowed ? "anonymous allowed" : "no provider accepted the client")
    }

    /// The answer when nobody needs to be asked: no credentials and only the built-in users
    /// in the chain (who need a user name), so the anonymous rule decides. nil: ask the chain
    /// (`authenticate`). A CONNECT decided here takes no future and no callback.
    public func decidedAtOnce(_ c: ClientInfo, password: [UInt8]?) -> AuthnResult? {
        guard c.username == nil, password == nil, providers(for: .authn).allSatisfy({ $0 is BuiltinAuth }) else { return nil }
        // Not cached: a cache entry per anonymous client (about 270 bytes) cost more than the decision.
        return Self.anonymous(allowAnonymous)
    }

    public func authenticate(_ c: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<AuthnResult> {
        if let verdict = decidedAtOnce(c, password: password) { return loop.makeSucceededFuture(verdict) }
        let list = providers(for: .authn)
        let cfg = config, anonymous = allowAnonymous
        // Not String(format:) per byte: Foundation's formatter cost about a quarter of a cached CONNECT.
        let digest = password.map { PasswordCheck.hex(SHA256.hash(data: $0)) } ?? "-"
        let key = DecisionCache<AuthnResult>.Key(kind: 1, clientId: c.clientId, username: c.username ?? "",
                                                  detail: "\(digest)|\(c.peerAddress)|\(c.certSubject ?? "")")
        return authnCache.lookup(key, now: loop.now, on: loop, hit: { [self] in
            if !$0.provider.isEmpty { stats($0.provider).cacheHit() }
        }) { [self] in
            fold(list, on: loop, what: "auth", ask: { $0.authenticate(c, password: password, on: loop) }, nobody: {
                (Self.anonymous(anonymous), anonymous ? cfg.allowTTL : cfg.denyTTL)
            }, decided: { p, _, answer in
                switch answer.decision {
                case .allow(let su):
                    return (AuthnResult(allowed: true, superuser: su, provider: p.name, reason: "",
                                        subscriptions: answer.subscriptions), answer.ttl ?? cfg.allowTTL)
                case .deny(let why):
                    return (AuthnResult(allowed: false, superuser: false, provider: p.name, reason: why), answer.ttl ?? cfg.denyTTL)
                case .error(let why):
                    return (AuthnResult(allowed: cfg.fallbackAllow, superuser: false, provider: p.name,
                                        reason: "provider error: \(why)"), .zero)
                case .ignore:  // `fold` never decides on an ignore
                    return (AuthnResult(allowed: cfg.fallbackAllow, superuser: false, provider: p.name, reason: ""), .zero)
                }
            })
        }
    }

    // MARK: Authorization

    /// The chain's ACL answer, with how long it may be kept (zero: not at all, e.g. the
    /// fallback after a provider error).
    public func authorize(_ c: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ACLAnswer> {
        let key = aclKey(c, access, topic)
        let list = providers(for: .authz)
        return authzCache.lookup(key, now: loop.now, on: loop, hit: { [self] in stats(slot: $0.providerSlot)?.cacheHit() }) { [self] in
            fold(list, on: loop, what: "acl", ask: { $0.authorize(c, access: access, topic: topic, on: loop) },
                 nobody: { [self] in let a = aclNoMatch(); return (a, a.ttl) },
                 decided: { [self] _, st, answer in let a = aclAnswer(st, answer); return (a, a.ttl) })
        }
    }

    private func aclKey(_ c: ClientInfo, _ access: ACLAccess, _ topic: String) -> DecisionCache<ACLAnswer>.Key {
        DecisionCache<ACLAnswer>.Key(kind: access.rawValue + 1, clientId: c.clientId, username: c.username ?? "",
                                     detail: "\(topic)|\(c.peerAddress)")
    }

    /// `acl_nomatch`, when no provider decides.
    private func aclNoMatch() -> ACLAnswer {
        let ok = config.aclNomatchAllow
        return ACLAnswer(allowed: ok, ttl: ok ? config.allowTTL : config.denyTTL)
    }

    /// The answer of the provider that decided; an error applies the fallback, uncached.
    private func aclAnswer(_ st: ProviderStats, _ answer: ProviderAnswer) -> ACLAnswer {
        let cfg = config
        let (allowed, ttl): (Bool, TimeAmount)
        switch answer.decision {
        case .allow: (allowed, ttl) = (true, answer.ttl ?? cfg.allowTTL)
        case .deny: (allowed, ttl) = (false, answer.ttl ?? cfg.denyTTL)
        default: (allowed, ttl) = (cfg.fallbackAllow, .zero)
        }
        return ACLAnswer(allowed: allowed, ttl: ttl, providerSlot: st.slot)
    }

    /// The chain's ACL answer without waiting, when every ACL provider answers synchronously
    /// (`AuthProvider.answersSynchronously`: the built-in rules); nil otherwise, and
    /// `authorize` asks.
    /// Same decisions and statistics as `authorize`, without its futures: a SUBSCRIBE of 100
    /// filters asks 100 questions, and the futures were a fifth of its cost.
    ///
    /// Not kept in the shared cache: the rules answer faster than a cache entry is made and
    /// found (key strings, lock, LRU links), and the entry was ~250 B per subscribed client
    /// for a question asked about once per session. A publisher's answers are still kept, in
    /// its connection's own cache (with the answer's TTL).
    public func authorizeNow(_ c: ClientInfo, access: ACLAccess, topic: String) -> ACLAnswer? {
        let list = providers(for: .authz)
        guard list.allSatisfy(\.answersSynchronously) else { return nil }
        var result = aclNoMatch()
        for p in list {
            let answer = p.authorizeNow(c, access: access, topic: topic) ?? ProviderAnswer(.error("no synchronous answer"))
            // One statistics lookup per provider (a lock and a dictionary by name): this runs
            // for every SUBSCRIBE filter.
            let st = stats(p.name)
            if settled(p, st, answer, seconds: 0, what: "acl") {
                result = aclAnswer(st, answer)
                break
            }
        }
        return result
    }

    /// Counts a provider's answer and logs an error; true when the answer decides (not an ignore).
    private func settled(_ p: AuthProvider, _ st: ProviderStats, _ answer: ProviderAnswer, seconds: Double, what: String) -> Bool {
        switch answer.decision {
        case .ignore:
            st.record(seconds)
            return false
        case .error(let why):
            st.record(seconds, timedOut: why.contains("timed out"), error: true)
            logger.warning("\(what) provider failed; applying fallback", metadata: [
                "sidecar.name": "\(p.name)", "error": "\(why)", "auth.fallback": "\(config.fallbackAllow ? "allow" : "deny")"])
        case .allow, .deny:
            st.record(seconds)
        }
        return true
    }

    /// The fold both questions share (mosquitto's defer loop): providers are asked in order
    /// until one does not ignore; an error is counted, logged and decided by `decided` with
    /// the fallback, uncached (TTL zero).
    private func fold<R>(_ list: [AuthProvider], from i: Int = 0, on loop: EventLoop, what: String,
                         ask: @escaping (AuthProvider) -> EventLoopFuture<ProviderAnswer>,
                         nobody: @escaping () -> (R, TimeAmount),
                         decided: @escaping (AuthProvider, ProviderStats, ProviderAnswer) -> (R, TimeAmount)) -> EventLoopFuture<(R, TimeAmount)> {
        guard i < list.count else { return loop.makeSucceededFuture(nobody()) }
        let p = list[i]
        let started = loop.now
        return ask(p).hop(to: loop)
            .recover { ProviderAnswer(.error("\($0)")) }
            .flatMap { [self] answer in
                let secs = Double((loop.now - started).nanoseconds) / 1e9
                let st = stats(p.name)
                guard settled(p, st, answer, seconds: secs, what: what) else {
                    return fold(list, from: i + 1, on: loop, what: what, ask: ask, nobody: nobody, decided: decided)
                }
                return loop.makeSucceededFuture(decided(p, st, answer))
            }
    }
}
