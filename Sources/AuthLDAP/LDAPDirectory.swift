/// An LDAP result code (RFC 4511 appendix A), with the names the decisions and logs use.
public struct LDAPResultCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ v: Int32) { rawValue = v }

    public static let success = LDAPResultCode(0)
    public static let sizeLimitExceeded = LDAPResultCode(4)
    public static let noSuchObject = LDAPResultCode(32)
    public static let invalidDNSyntax = LDAPResultCode(34)
    public static let inappropriateAuthentication = LDAPResultCode(48)
    public static let invalidCredentials = LDAPResultCode(49)
    public static let insufficientAccessRights = LDAPResultCode(50)
    public static let busy = LDAPResultCode(51)
    public static let unavailable = LDAPResultCode(52)
    public static let unwillingToPerform = LDAPResultCode(53)

    /// The bind said something about the credentials or the name: the client is refused.
    /// Everything else (busy, unavailable, other, a protocol error) is the server's problem:
    /// `error`, and the broker's cache and fallback decide.
    public var refusesCredentials: Bool {
        [.noSuchObject, .invalidDNSyntax, .inappropriateAuthentication, .invalidCredentials,
         .insufficientAccessRights, .unwillingToPerform].contains(self)
    }

    public var description: String {
        switch self {
        case .success: return "success (0)"
        case .sizeLimitExceeded: return "sizeLimitExceeded (4)"
        case .noSuchObject: return "noSuchObject (32)"
        case .invalidDNSyntax: return "invalidDNSyntax (34)"
        case .inappropriateAuthentication: return "inappropriateAuthentication (48)"
        case .invalidCredentials: return "invalidCredentials (49)"
        case .insufficientAccessRights: return "insufficientAccessRights (50)"
        case .busy: return "busy (51)"
        case .unavailable: return "unavailable (52)"
        case .unwillingToPerform: return "unwillingToPerform (53)"
        default: return "result code \(rawValue)"
        }
    }
}

/// The answer to a simple bind: the result code and the server's diagnostic message.
public struct LDAPBindResult: Sendable, Equatable {
    public var code: LDAPResultCode
    public var message: String
    public init(_ code: LDAPResultCode, message: String = "") {
        self.code = code
        self.message = message
    }
}

public enum LDAPScope: String, Sendable, Equatable, CaseIterable {
    case base, one, sub
}

/// One search: everything is already escaped (the filter per RFC 4515).
public struct LDAPSearch: Sendable, Equatable {
    public var base: String
    public var scope: LDAPScope
    public var filter: String
    /// Attributes to return; empty: none (`1.1`).
    public var attributes: [String]
    /// Most entries the server may return; one more than wanted tells "more than one".
    public var sizeLimit: Int

    public init(base: String, scope: LDAPScope, filter: String, attributes: [String] = [], sizeLimit: Int) {
        self.base = base
        self.scope = scope
        self.filter = filter
        self.attributes = attributes
        self.sizeLimit = sizeLimit
    }
}

/// An entry found: its DN and the requested attributes (names as asked, lower-cased; values
/// as bytes).
public struct LDAPEntry: Sendable, Equatable {
    public var dn: String
    public var attributes: [String: [[UInt8]]]
    public init(dn: String, attributes: [String: [[UInt8]]] = [:]) {
        self.dn = dn
        self.attributes = attributes
    }
}

public struct LDAPSearchResult: Sendable, Equatable {
    public var entries: [LDAPEntry]
    /// The server stopped at the size limit: there were more entries than returned.
    public var truncated: Bool
    /// The search base does not exist (noSuchObject).
    public var noSuchBase: Bool

    public init(entries: [LDAPEntry], truncated: Bool = false, noSuchBase: Bool = false) {
        self.entries = entries
        self.truncated = truncated
        self.noSuchBase = noSuchBase
    }
}

/// What the decisions need from an LDAP server (the libldap pools in the sidecar, a fake in
/// the unit tests). Errors are `BackendError`s (server down, timeout, a protocol error).
public protocol LDAPDirectory: Sendable {
    /// A simple bind as `dn` with `password` (never empty: the caller refuses that first), on a
    /// connection of its own; its result code is returned, not thrown.
    func bind(dn: String, password: [UInt8]) async throws -> LDAPBindResult

    /// A search as the service account (`bind_dn`), or anonymously without one.
    func search(_ search: LDAPSearch) async throws -> LDAPSearchResult
}
