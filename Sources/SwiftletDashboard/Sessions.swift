import Foundation
import NIOConcurrencyHelpers

/// Login tokens: random, held in memory only (a restart logs everyone out), each with an
/// expiry and a CSRF token for the browser's cookie session.
final class TokenStore: @unchecked Sendable {
    struct Session: Sendable {
        var username: String
        var expires: Double
        var csrf: String
    }

    private let lock = NIOLock()
    private var sessions: [String: Session] = [:]
    let ttl: Double
    /// Bound on live tokens: the oldest go first past it.
    static let maxSessions = 10_000

    init(ttl: Double) { self.ttl = ttl }

    func issue(for username: String, now: Double = Date().timeIntervalSince1970) -> (token: String, session: Session) {
        let token = AdminStore.randomToken(32)
        let s = Session(username: username, expires: now + ttl, csrf: AdminStore.randomToken(16))
        lock.withLock {
            if sessions.count >= Self.maxSessions {
                sessions = sessions.filter { $0.value.expires > now }
                if sessions.count >= Self.maxSessions, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires }) {
                    sessions[oldest.key] = nil
                }
            }
            sessions[token] = s
        }
        return (token, s)
    }

    enum Lookup { case valid(Session), expired, unknown }

    func lookup(_ token: String, now: Double = Date().timeIntervalSince1970) -> Lookup {
        lock.withLock {
            guard let s = sessions[token] else { return .unknown }
            guard s.expires > now else {
                sessions[token] = nil
                return .expired
            }
            return .valid(s)
        }
    }

    func revoke(_ token: String) { lock.withLock { _ = sessions.removeValue(forKey: token) } }

    /// Every token of a user (password changed, user deleted).
    func revokeAll(of username: String, except keep: String? = nil) {
        lock.withLock { sessions = sessions.filter { $0.value.username != username || $0.key == keep } }
    }
}

/// Login attempts per client address in a sliding minute; past the limit, 429.
final class LoginLimiter: @unchecked Sendable {
    private let lock = NIOLock()
    private var attempts: [String: [Double]] = [:]
    let perMinute: Int

    init(perMinute: Int) { self.perMinute = perMinute }

    /// Records an attempt; nil when allowed, else the seconds until the next one is.
    func attempt(from address: String, now: Double = Date().timeIntervalSince1970) -> Double? {
        lock.withLock {
            if attempts.count > 10_000 { attempts = attempts.filter { ($0.value.last ?? 0) > now - 60 } }
            var list = attempts[address, default: []].filter { $0 > now - 60 }
            if list.count >= perMinute {
                attempts[address] = list
                return max(1, (list.first ?? now) + 60 - now)
            }
            list.append(now)
            attempts[address] = list
            return nil
        }
    }
}
