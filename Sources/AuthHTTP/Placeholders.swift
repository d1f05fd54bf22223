import SwiftletIPC

/// The values emqttd's placeholders stand for, taken from one AUTHN or AUTHZ request:
/// `%u` username, `%c` client id, `%a` peer IP address, `%P` password, `%t` topic,
/// `%A` access (1 subscribe, 2 publish), `%C` TLS certificate common name, `%d` its subject.
/// A value the request does not carry (no username, no certificate) expands to "".
public struct PlaceholderValues: Sendable, Equatable {
    public var username: String?
    public var clientId: String
    public var ipAddress: String
    public var password: [UInt8]?
    public var topic: String?
    public var access: IPCAccess?
    public var certCommonName: String?
    public var certSubject: String?

    public init(username: String? = nil, clientId: String = "", ipAddress: String = "", password: [UInt8]? = nil,
                topic: String? = nil, access: IPCAccess? = nil, certCommonName: String? = nil, certSubject: String? = nil) {
        self.username = username
        self.clientId = clientId
        self.ipAddress = ipAddress
        self.password = password
        self.topic = topic
        self.access = access
        self.certCommonName = certCommonName
        self.certSubject = certSubject
    }

    public init(client: IPCClient, password: [UInt8]? = nil, topic: String? = nil, access: IPCAccess? = nil) {
        self.init(username: client.username, clientId: client.clientId, ipAddress: client.peerAddress,
                  password: password, topic: topic, access: access,
                  certCommonName: client.certCommonName, certSubject: client.certSubject)
    }

    /// The bytes `%<letter>` stands for; nil for a letter that is not a placeholder.
    public func value(for letter: UInt8) -> [UInt8]? {
        switch letter {
        case UInt8(ascii: "u"): return Array((username ?? "").utf8)
        case UInt8(ascii: "c"): return Array(clientId.utf8)
        case UInt8(ascii: "a"): return Array(ipAddress.utf8)
        case UInt8(ascii: "P"): return password ?? []
        case UInt8(ascii: "t"): return Array((topic ?? "").utf8)
        case UInt8(ascii: "A"): return access.map { Array(String($0.rawValue).utf8) } ?? []
        case UInt8(ascii: "C"): return Array((certCommonName ?? "").utf8)
        case UInt8(ascii: "d"): return Array((certSubject ?? "").utf8)
        default: return nil
        }
    }
}

public enum Placeholders {
    /// The placeholder letters, in the order the documentation lists them.
    public static let letters = "ucaPtACd"

    /// Replaces every placeholder of `template` in one left-to-right pass: text that a value
    /// brings in (a username "%P") is never expanded again. `escape` is applied to each value
    /// (percent-encoding for a URL path); the template's own text is kept as written. A `%`
    /// not followed by a placeholder letter stays as it is.
    public static func expand(_ template: String, _ values: PlaceholderValues,
                              escape: ([UInt8]) -> [UInt8] = { $0 }) -> [UInt8] {
        let t = Array(template.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(t.count)
        var i = 0
        while i < t.count {
            if t[i] == UInt8(ascii: "%"), i + 1 < t.count, let v = values.value(for: t[i + 1]) {
                out += escape(v)
                i += 2
            } else {
                out.append(t[i])
                i += 1
            }
        }
        return out
    }

    /// Whether `template` holds at least one placeholder.
    public static func contains(_ template: String) -> Bool {
        let t = Array(template.utf8)
        return t.indices.dropLast().contains { t[$0] == UInt8(ascii: "%") && letters.utf8.contains(t[$0 + 1]) }
    }
}
