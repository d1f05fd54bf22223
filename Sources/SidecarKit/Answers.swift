import Foundation
import NIOCore
import SwiftletIPC

/// AUTHN_REQUEST as a handler sees it (SPEC 3.2).
public struct AuthnRequest: Sendable, Equatable {
    public var client: IPCClient
    public var password: [UInt8]?

    public init(client: IPCClient, password: [UInt8]?) {
        self.client = client
        self.password = password
    }

    /// The password as UTF-8 text; nil when absent or not UTF-8.
    public var passwordText: String? { password.flatMap { String(bytes: $0, encoding: .utf8) } }
}

/// AUTHZ_REQUEST as a handler sees it (SPEC 3.3).
public struct AuthzRequest: Sendable, Equatable {
    public var client: IPCClient
    public var access: IPCAccess
    /// The topic published to, or the filter subscribed (without `$share/<group>/`).
    public var topic: String
    public var qos: UInt8
    public var retain: Bool

    public init(client: IPCClient, access: IPCAccess, topic: String, qos: UInt8 = 0, retain: Bool = false) {
        self.client = client
        self.access = access
        self.topic = topic
        self.qos = qos
        self.retain = retain
    }
}

/// An AUTHN_REPLY. `ttlMs` 0 means the broker's default cache TTL. `subscriptions`, with an
/// allow, are made for the client right after CONNACK (protocol version 3, SPEC 8: sent as
/// AUTHN_REPLY_SUBS; to a broker of an older version they are not sent, and the sidecar
/// logs that once).
public struct AuthnAnswer: Sendable, Equatable {
    public var decision: IPCDecision
    public var superuser: Bool
    public var ttlMs: UInt32
    public var reason: String
    public var subscriptions: [IPCSubscription]

    public init(decision: IPCDecision, superuser: Bool = false, ttlMs: UInt32 = 0, reason: String = "",
                subscriptions: [IPCSubscription] = []) {
        self.decision = decision
        self.superuser = superuser
        self.ttlMs = ttlMs
        self.reason = reason
        self.subscriptions = subscriptions
    }

    public static func allow(superuser: Bool = false, ttlMs: UInt32 = 0, reason: String = "",
                             subscriptions: [IPCSubscription] = []) -> AuthnAnswer {
        AuthnAnswer(decision: .allow, superuser: superuser, ttlMs: ttlMs, reason: reason, subscriptions: subscriptions)
    }
    public static func deny(_ reason: String = "", ttlMs: UInt32 = 0) -> AuthnAnswer {
        AuthnAnswer(decision: .deny, ttlMs: ttlMs, reason: reason)
    }
    /// Not mine: the broker asks the next provider.
    public static let ignore = AuthnAnswer(decision: .ignore)
    /// Could not decide (backend down): the broker applies its fallback and does not cache.
    public static func error(_ reason: String) -> AuthnAnswer { AuthnAnswer(decision: .error, reason: reason) }

    var message: IPCMessage { message(version: 1) }

    /// AUTHN_REPLY_SUBS when the connection speaks version 3 and there are subscriptions to
    /// send with an allow, else AUTHN_REPLY (subscriptions dropped).
    func message(version: UInt16) -> IPCMessage {
        if version >= IPCVersion.subscriptions, decision == .allow, !subscriptions.isEmpty {
            return .authnReplySubs(decision: decision, superuser: superuser, ttlMs: ttlMs, reason: reason,
                                   subscriptions: subscriptions)
        }
        return .authnReply(decision: decision, superuser: superuser, ttlMs: ttlMs, reason: reason)
    }
}

/// An AUTHZ_REPLY.
public struct AuthzAnswer: Sendable, Equatable {
    public var decision: IPCDecision
    public var ttlMs: UInt32
    public var reason: String

    public init(decision: IPCDecision, ttlMs: UInt32 = 0, reason: String = "") {
        self.decision = decision
        self.ttlMs = ttlMs
        self.reason = reason
    }

    public static func allow(ttlMs: UInt32 = 0, reason: String = "") -> AuthzAnswer {
        AuthzAnswer(decision: .allow, ttlMs: ttlMs, reason: reason)
    }
    public static func deny(_ reason: String = "", ttlMs: UInt32 = 0) -> AuthzAnswer {
        AuthzAnswer(decision: .deny, ttlMs: ttlMs, reason: reason)
    }
    public static let ignore = AuthzAnswer(decision: .ignore)
    public static func error(_ reason: String) -> AuthzAnswer { AuthzAnswer(decision: .error, reason: reason) }

    var message: IPCMessage { .authzReply(decision: decision, ttlMs: ttlMs, reason: reason) }
}

/// The answer to a synchronous `message.publish` (SPEC 3.5).
public enum PublishAction: Sendable, Equatable {
    case `continue`
    case replace(IPCPublishMessage)
    case drop

    var message: IPCMessage {
        switch self {
        case .continue: return .hookPublishReply(action: 0, message: nil)
        case .replace(let m): return .hookPublishReply(action: 1, message: m)
        case .drop: return .hookPublishReply(action: 2, message: nil)
        }
    }
}

/// What `swiftlet-ctl <command> args...` prints (CTL_REPLY).
public struct CommandResult: Sendable, Equatable {
    public enum Status: UInt8, Sendable {
        case ok = 0, usage = 1, failed = 2
    }
    public var status: Status
    public var text: String
    /// JSON for `swiftlet-ctl --json` ("" when none).
    public var json: String

    public init(status: Status, text: String, json: String = "") {
        self.status = status
        self.text = text
        self.json = json
    }

    public static func ok(_ text: String, json: String = "") -> CommandResult { CommandResult(status: .ok, text: text, json: json) }
    /// Wrong arguments: ctl prints `text` (usually the usage line) and exits non-zero.
    public static func usage(_ text: String) -> CommandResult { CommandResult(status: .usage, text: text) }
    public static func failed(_ text: String) -> CommandResult { CommandResult(status: .failed, text: text) }

    var message: IPCMessage { .ctlReply(status: status.rawValue, text: text, json: json) }
}

/// Which cached decisions the broker should drop (INVALIDATE).
public enum InvalidateScope: Sendable, Equatable {
    case all
    case username(String)
    case clientId(String)

    var message: IPCMessage {
        switch self {
        case .all: return .invalidate(scope: 0, value: "")
        case .username(let u): return .invalidate(scope: 1, value: u)
        case .clientId(let c): return .invalidate(scope: 2, value: c)
        }
    }
}
