import NIOCore

/// Who is asking: the client as the auth chain sees it.
public struct ClientInfo: Sendable, Hashable {
    public var clientId: String
    public var username: String?
    public var peerAddress: String
    public var peerPort: Int
    public var protocolLevel: UInt8
    public var listener: String
    public var certCommonName: String?
    public var certSubject: String?

    public init(clientId: String, username: String?, peerAddress: String, peerPort: Int = 0, protocolLevel: UInt8 = 4,
                listener: String = "", certCommonName: String? = nil, certSubject: String? = nil) {
        self.clientId = clientId
        self.username = username
        self.peerAddress = peerAddress
        self.peerPort = peerPort
        self.protocolLevel = protocolLevel
        self.listener = listener
        self.certCommonName = certCommonName
        self.certSubject = certSubject
    }
}

/// emqttd's access values: 1 subscribe, 2 publish.
public enum ACLAccess: UInt8, Sendable, Hashable {
    case subscribe = 1
    case publish = 2
}

/// One provider's answer. `ignore` passes to the next provider; `error` means it could not
/// decide (its backend is down) and the broker's fallback applies, uncached.
public enum ProviderDecision: Sendable, Equatable {
    case allow(superuser: Bool)
    case deny(reason: String)
    case ignore
    case error(String)
}

public struct ProviderAnswer: Sendable, Equatable {
    public var decision: ProviderDecision
    /// How long the answer may be cached; nil: the broker's default.
    public var ttl: TimeAmount?
    /// With an authentication allow: subscriptions to make for the client right after
    /// CONNACK (sidecar protocol version 3, AUTHN_REPLY_SUBS). Ignored with other decisions.
    public var subscriptions: [StaticSubscription]

    public init(_ decision: ProviderDecision, ttl: TimeAmount? = nil, subscriptions: [StaticSubscription] = []) {
        self.decision = decision
        self.ttl = ttl
        self.subscriptions = subscriptions
    }
}

/// A subscription a provider makes for a client when it authenticates it (emqttd_auth_redis's
/// `subcmd`): applied after CONNACK as if the client had sent SUBSCRIBE, ACL included.
public struct StaticSubscription: Sendable, Hashable {
    public var filter: String
    /// 0, 1 or 2.
    public var qos: UInt8
    public init(filter: String, qos: UInt8) {
        self.filter = filter
        self.qos = qos
    }
}

/// An authentication and/or authorization backend in the chain (built-in or a sidecar).
public protocol AuthProvider: AnyObject, Sendable {
    var name: String { get }
    /// Ascending: lower is asked first.
    var order: Int { get }
    var authenticates: Bool { get }
    var authorizes: Bool { get }
    func authenticate(_ client: ClientInfo, password: [UInt8]?, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer>
    func authorize(_ client: ClientInfo, access: ACLAccess, topic: String, on loop: EventLoop) -> EventLoopFuture<ProviderAnswer>
    /// Position for one question; a sidecar registers authn and authz with orders of their own.
    func order(for role: AuthRole) -> Int
    /// True when `authorizeNow` always answers (no I/O): the chain then decides without futures.
    var answersSynchronously: Bool { get }
    /// The ACL answer computed on the calling thread, nil when it needs I/O.
    func authorizeNow(_ client: ClientInfo, access: ACLAccess, topic: String) -> ProviderAnswer?
}

extension AuthProvider {
    public func order(for role: AuthRole) -> Int { order }
    public var answersSynchronously: Bool { false }
    public func authorizeNow(_ client: ClientInfo, access: ACLAccess, topic: String) -> ProviderAnswer? { nil }
}

/// The two questions of the chain.
public enum AuthRole: Sendable, Hashable {
    case authn
    case authz
}

/// The chain's verdict on a CONNECT.
public struct AuthnResult: Sendable, Equatable {
    public var allowed: Bool
    public var superuser: Bool
    /// Which provider decided ("" when nobody did).
    public var provider: String
    public var reason: String
    /// Subscriptions the deciding provider gave with its allow (cached with the verdict).
    public var subscriptions: [StaticSubscription] = []
}

/// The chain's answer to an ACL question and how long it may be cached (zero: never).
public struct ACLAnswer: Sendable, Equatable {
    public var allowed: Bool
    public var ttl: TimeAmount
    /// Which provider decided: its counter slot in `AuthChain` (-1 when nobody did).
    public var providerSlot: Int
    public init(allowed: Bool, ttl: TimeAmount, providerSlot: Int = -1) {
        self.allowed = allowed
        self.ttl = ttl
        self.providerSlot = providerSlot
    }

    /// The same answer, whoever gave it.
    public static func == (a: ACLAnswer, b: ACLAnswer) -> Bool { a.allowed == b.allowed && a.ttl == b.ttl }
}
