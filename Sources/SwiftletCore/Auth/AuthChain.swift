import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Per-provider counters (ctl `cache stats`, dashboard).
public final class ProviderStats: @unchecked Sendable {
    private let lock = NIOLock()
    public private(set) var requests = 0
    public private(set) var timeouts = 0
    public private(set) var errors = 0
    public private(set) var restarts = 0
    /// Latency histogram: upper bounds in milliseconds, last bucket is everything above.
    public static let bucketsMs: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]
    public private(set) var latency = [Int](repeating: 0, count: ProviderStats.bucketsMs.count + 1)

    func record(_ seconds: Double, timedOut: Bool = false, error: Bool = false) {
        lock.withLock {
            requests += 1
            if timedOut { timeouts += 1 }
            if error { errors += 1 }
            let ms = seconds * 1000
            latency[Self.bucketsMs.firstIndex { ms <= $0 } ?? Self.bucketsMs.count] += 1
        }
    }

    func restarted() { lock.withLock { restarts += 1 } }

    public var snapshot: [String: Any] {
        lock.withLock {
            ["requests": requests, "timeouts": timeouts, "errors": errors, "restarts": restarts,
             "latency_ms_buckets": Dictionary(uniqueKeysWithValues: zip(Self.bucketsMs.map { "le_\(Int($0))" } + ["inf"], latency))]
        }
    }
}

/// Ordered providers folded into one decision (mosquitto's defer loop, EMQX's hook fold):
/// the first provider that does not ignore decides; `error` applies the fallback uncached.
/// Authentication and authorization are kept apart; answers go through `DecisionCache`.
public final class AuthChain: @unchecked Sendable {
    public let config: AuthConfig
    let allowAnonymous: Bool
    let logger: Logger
    private let providersBox = NIOLockedValueBox<[AuthProvider]>([])
    private let statsBox = NIOLockedValueBox<[String: ProviderStats]>([:])
    public let authnCache: DecisionCache<AuthnResult>
    public let authzCache: DecisionCache<ACLAnswer>

    init(config: AuthConfig, allowAnonymous: Bool, logger: Logger) {
        self.config = config
        self.allowAnonymous = allowAnonymous
        self.logger = logger
        self.authnCache = DecisionCache(capacity: config.cacheSize)
        self.authzCache = DecisionCache(capacity: config.cacheSize)
    }

    public var providers: [AuthProvider] { providersBox.withLockedValue { $0 } }

    public func add(_ p: AuthProvider) {
        providersBox.withLockedValue { list in
            list.removeAll { $0.name == p.name }
            list.append(p)
            list.sort { ($0.order, $0.name) < ($1.order, $1.name) }
        }
    }

    public func remove(named name: String) {
        providersBox.withLockedValue { $0.removeAll { $0.name == name } }
    }

    public func stats(_ name: String) -> ProviderStats {
        statsBox.withLockedValue { s in
            if let x = s[name] { return x }
            let x = ProviderStats()
            s[name] = x
            return x
        }
    }

    public var allStats: [String: ProviderStats] { statsBox.withLockedValue { $0 } }

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

    public func authenticate(_ c: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<AuthnResult> {
        let digest = password.map { SHA256.hash(data: $0).map { String(format: "%02x", $0) }.joined() } ?? "-"
        let key = DecisionCache<AuthnResult>.Key(kind: 1, clientId: c.clientId, username: c.username ?? "",
                                                  detail: "\(digest)|\(c.peerAddress)|\(c.certSubject ?? "")")
        let list = providers.filter { $0.authenticates }
        return authnCache.lookup(key, now: loop.now, on: loop) {
            foldAuthn(list, 0, c, password, loop)
        }
    }

    private func foldAuthn(_ list: [AuthProvider], _ i: Int, _ c: ClientInfo, _ password: [UInt8]?,
                           _ loop: EventLoop) -> EventLoopFuture<(AuthnResult, TimeAmount)> {
        guard i < list.count else {
            let ok = allowAnonymous
            return loop.makeSucceededFuture((AuthnResult(allowed: ok, superuser: false, provider: "",
                                                         reason: ok ? "anonymous allowed" : "no provider accepted the client"),
                                             ok ? config.allowTTL : config.denyTTL))
        }
        let p = list[i]
        let started = loop.now
        return p.authenticate(c, password: password, on: loop).hop(to: loop)
            .recover { ProviderAnswer(.error("\($0)")) }
            .flatMap { [self] answer in
                let secs = Double((loop.now - started).nanoseconds) / 1e9
                switch answer.decision {
                case .ignore:
                    stats(p.name).record(secs)
                    return foldAuthn(list, i + 1, c, password, loop)
                case .allow(let su):
                    stats(p.name).record(secs)
                    return loop.makeSucceededFuture((AuthnResult(allowed: true, superuser: su, provider: p.name, reason: ""),
                                                     answer.ttl ?? config.allowTTL))
                case .deny(let why):
                    stats(p.name).record(secs)
                    return loop.makeSucceededFuture((AuthnResult(allowed: false, superuser: false, provider: p.name, reason: why),
                                                     answer.ttl ?? config.denyTTL))
                case .error(let why):
                    stats(p.name).record(secs, timedOut: why.contains("timed out"), error: true)
                    logger.warning("auth provider failed; applying fallback", metadata: [
                        "sidecar.name": "\(p.name)", "error": "\(why)", "auth.fallback": "\(config.fallbackAllow ? "allow" : "deny")"])
                    return loop.makeSucceededFuture((AuthnResult(allowed: config.fallbackAllow, superuser: false, provider: p.name,
                                                                 reason: "provider error: \(why)"), .zero))
                }
            }
    }

    // MARK: Authorization

    /// The chain's ACL answer, with how long it may be kept (zero: not at all, e.g. the
    /// fallback after a provider error).
    public func authorize(_ c: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ACLAnswer> {
        let key = DecisionCache<ACLAnswer>.Key(kind: access.rawValue + 1, clientId: c.clientId, username: c.username ?? "",
                                          detail: "\(topic)|\(c.peerAddress)")
        let list = providers.filter { $0.authorizes }
        return authzCache.lookup(key, now: loop.now, on: loop) {
            foldAuthz(list, 0, c, access, topic, loop)
        }
    }

    private func foldAuthz(_ list: [AuthProvider], _ i: Int, _ c: ClientInfo, _ access: ACLAccess, _ topic: String,
                           _ loop: EventLoop) -> EventLoopFuture<(ACLAnswer, TimeAmount)> {
        guard i < list.count else {
            let ok = config.aclNomatchAllow
            let ttl = ok ? config.allowTTL : config.denyTTL
            return loop.makeSucceededFuture((ACLAnswer(allowed: ok, ttl: ttl), ttl))
        }
        let p = list[i]
        let started = loop.now
        return p.authorize(c, access: access, topic: topic, on: loop).hop(to: loop)
            .recover { ProviderAnswer(.error("\($0)")) }
            .flatMap { [self] answer in
                let secs = Double((loop.now - started).nanoseconds) / 1e9
                switch answer.decision {
                case .ignore:
                    stats(p.name).record(secs)
                    return foldAuthz(list, i + 1, c, access, topic, loop)
                case .allow:
                    stats(p.name).record(secs)
                    let ttl = answer.ttl ?? config.allowTTL
                    return loop.makeSucceededFuture((ACLAnswer(allowed: true, ttl: ttl), ttl))
                case .deny:
                    stats(p.name).record(secs)
                    let ttl = answer.ttl ?? config.denyTTL
                    return loop.makeSucceededFuture((ACLAnswer(allowed: false, ttl: ttl), ttl))
                case .error(let why):
                    stats(p.name).record(secs, timedOut: why.contains("timed out"), error: true)
                    logger.warning("acl provider failed; applying fallback", metadata: ["sidecar.name": "\(p.name)", "error": "\(why)"])
                    return loop.makeSucceededFuture((ACLAnswer(allowed: config.fallbackAllow, ttl: .zero), .zero))
                }
            }
    }
}
