import SidecarLinkKit
import SwiftletAuth
import NIOConcurrencyHelpers
import NIOCore
import SwiftletIPC

/// A sidecar in the auth/ACL chain. It outlives the sidecar's connection: while the sidecar
/// is down (crashed, restarting) it answers `error`, so cached answers keep serving and
/// the rest get the configured fallback.
final class SidecarProvider: AuthProvider, @unchecked Sendable {
    let name: String
    private let hub: SidecarHub
    private struct Roles { var authnOrder: Int?; var authzOrder: Int? }
    private let roles = NIOLockedValueBox(Roles())

    init(name: String, hub: SidecarHub) {
        self.name = name
        self.hub = hub
    }

    /// Position in listings: the lower of the two registered orders. The chain asks each
    /// question in that question's own order (`order(for:)`).
    var order: Int { roles.withLockedValue { [$0.authnOrder, $0.authzOrder].compactMap { $0 }.min() ?? 100 } }

    func order(for role: AuthRole) -> Int {
        roles.withLockedValue { (role == .authn ? $0.authnOrder : $0.authzOrder) ?? 100 }
    }
    var authenticates: Bool { roles.withLockedValue { $0.authnOrder != nil } }
    var authorizes: Bool { roles.withLockedValue { $0.authzOrder != nil } }

    func update(_ caps: [IPCCapability]) {
        var r = Roles()
        for c in caps {
            if case .authn(let o) = c { r.authnOrder = Int(o) }
            if case .authz(let o) = c { r.authzOrder = Int(o) }
        }
        roles.withLockedValue { $0 = r }
    }

    static func ipcClient(_ c: ClientInfo) -> IPCClient {
        IPCClient(clientId: c.clientId, username: c.username, peerAddress: c.peerAddress,
                  peerPort: UInt16(clamping: c.peerPort), protocolLevel: c.protocolLevel, listener: c.listener,
                  certCommonName: c.certCommonName, certSubject: c.certSubject)
    }

    private static func ttl(_ ms: UInt32) -> TimeAmount? { ms == 0 ? nil : .milliseconds(Int64(ms)) }

    /// Sends `m` to the sidecar's current connection. A request that the connection failed
    /// because it closed is sent again, once, when another connection serves the name by then:
    /// a reload's hand-over swaps connections while lookups are on their way.
    private func ask(_ m: IPCMessage) -> EventLoopFuture<IPCMessage>? {
        guard let conn = hub.connection(named: name) else { return nil }
        let timeout = hub.config.requestTimeout
        return conn.request(m, timeout: timeout).flatMapError { [hub, name] error in
            switch error as? SidecarRequestError {
            case .closed?, .down?:
                if let next = hub.connection(named: name), next !== conn { return next.request(m, timeout: timeout) }
            default: break
            }
            return conn.eventLoop.makeFailedFuture(error)
        }
    }

    func authenticate(_ c: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        let pw = password.map { ByteBuffer(bytes: $0) }
        guard let asked = ask(.authnRequest(client: Self.ipcClient(c), password: pw)) else {
            return loop.makeSucceededFuture(ProviderAnswer(.error("sidecar \(name) is down")))
        }
        return asked
            .map { reply -> ProviderAnswer in
                let (d, su, ttl, reason, subs): (IPCDecision, Bool, UInt32, String, [IPCSubscription])
                switch reply {
                case .authnReply(let d1, let su1, let ttl1, let reason1): (d, su, ttl, reason, subs) = (d1, su1, ttl1, reason1, [])
                case .authnReplySubs(let d1, let su1, let ttl1, let reason1, let subs1):  // version 3 (SPEC 8)
                    (d, su, ttl, reason, subs) = (d1, su1, ttl1, reason1, subs1)
                default: return ProviderAnswer(.error("unexpected reply \(reply.kind)"))
                }
                switch d {
                case .allow:
                    return ProviderAnswer(.allow(superuser: su), ttl: Self.ttl(ttl),
                                          subscriptions: subs.map { StaticSubscription(filter: $0.filter, qos: $0.qos) })
                case .deny: return ProviderAnswer(.deny(reason: reason.isEmpty ? "denied by \(self.name)" : reason), ttl: Self.ttl(ttl))
                case .ignore: return ProviderAnswer(.ignore)
                case .error: return ProviderAnswer(.error(reason.isEmpty ? "sidecar error" : reason))
                }
            }
            .recover { ProviderAnswer(.error("\($0)")) }
    }

    func authorize(_ c: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer> {
        let a: IPCAccess = access == .publish ? .publish : .subscribe
        guard let asked = ask(.authzRequest(client: Self.ipcClient(c), access: a, topic: topic, qos: 0, retain: false)) else {
            return loop.makeSucceededFuture(ProviderAnswer(.error("sidecar \(name) is down")))
        }
        return asked
            .map { reply -> ProviderAnswer in
                guard case .authzReply(let d, let ttl, let reason) = reply else {
                    return ProviderAnswer(.error("unexpected reply \(reply.kind)"))
                }
                switch d {
                case .allow: return ProviderAnswer(.allow(superuser: false), ttl: Self.ttl(ttl))
                case .deny: return ProviderAnswer(.deny(reason: reason), ttl: Self.ttl(ttl))
                case .ignore: return ProviderAnswer(.ignore)
                case .error: return ProviderAnswer(.error(reason.isEmpty ? "sidecar error" : reason))
                }
            }
            .recover { ProviderAnswer(.error("\($0)")) }
    }
}
