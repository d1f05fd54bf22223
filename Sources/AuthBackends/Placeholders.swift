import SwiftletIPC
/// emqttd's placeholders: `%u` username, `%c` client id, `%a` IP address, `%C` TLS
/// certificate common name, `%d` certificate subject, `%P` password.
public enum Placeholder: Character, Sendable, Equatable, CaseIterable {
    case username = "u"
    case clientId = "c"
    case ipAddress = "a"
    case certCommonName = "C"
    case certSubject = "d"
    case password = "P"
}

/// The values of one request; nil is "absent" (an anonymous client's username): a SQL NULL
/// when bound.
public struct PlaceholderValues: Sendable, Equatable {
    public var username: String?
    public var clientId: String
    public var ipAddress: String
    public var certCommonName: String?
    public var certSubject: String?
    public var password: [UInt8]?

    public init(username: String?, clientId: String, ipAddress: String, certCommonName: String? = nil,
                certSubject: String? = nil, password: [UInt8]? = nil) {
        self.username = username
        self.clientId = clientId
        self.ipAddress = ipAddress
        self.certCommonName = certCommonName
        self.certSubject = certSubject
        self.password = password
    }

    public subscript(_ p: Placeholder) -> [UInt8]? {
        switch p {
        case .username: return username.map { Array($0.utf8) }
        case .clientId: return Array(clientId.utf8)
        case .ipAddress: return Array(ipAddress.utf8)
        case .certCommonName: return certCommonName.map { Array($0.utf8) }
        case .certSubject: return certSubject.map { Array($0.utf8) }
        case .password: return password
        }
    }
}

/// A text with placeholders, for backends whose arguments are sent whole (a Redis command's
/// arguments, an LDAP filter once escaped): `render` substitutes, the caller escapes.
public struct PlaceholderTemplate: Sendable, Equatable {
    public enum Segment: Sendable, Equatable {
        case text(String)
        case placeholder(Placeholder)
    }

    public var segments: [Segment]

    /// `%` followed by one of u c a C d P is a placeholder; any other `%` is text.
    public init(_ text: String) {
        var segments: [Segment] = []
        var current = ""
        var i = text.startIndex
        while i < text.endIndex {
            let next = text.index(after: i)
            if text[i] == "%", next < text.endIndex, let p = Placeholder(rawValue: text[next]) {
                if !current.isEmpty { segments.append(.text(current)) }
                current = ""
                segments.append(.placeholder(p))
                i = text.index(after: next)
            } else {
                current.append(text[i])
                i = next
            }
        }
        if !current.isEmpty { segments.append(.text(current)) }
        self.segments = segments
    }

    public var placeholders: [Placeholder] {
        segments.compactMap { if case .placeholder(let p) = $0 { return p } else { return nil } }
    }

    /// The text with every placeholder replaced by `escape(value)` (absent values: empty).
    public func render(_ values: PlaceholderValues, escape: ([UInt8]) -> [UInt8] = { $0 }) -> [UInt8] {
        var out: [UInt8] = []
        for s in segments {
            switch s {
            case .text(let t): out += Array(t.utf8)
            case .placeholder(let p): out += escape(values[p] ?? [])
            }
        }
        return out
    }
}

/// A SQL query from a plugin file made into a prepared statement: every placeholder, quoted
/// (`'%u'`) or bare (`%u`), becomes a bound parameter (`?` for MariaDB, `$1`, `$2`... for
/// PostgreSQL), so that the seed's queries work unmodified and no value is ever spliced into
/// SQL. A placeholder inside a longer string literal (`'user:%u'`, `LIKE '%u%'`) cannot be
/// bound and is refused; so are parameters written by hand (`?`, `$1`).
public struct PreparedQuery: Sendable, Equatable {
    public enum Style: Sendable, Equatable {
        /// MariaDB / MySQL: `?`; backslash escapes inside literals; backticks quote names.
        case questionMark
        /// PostgreSQL: `$1`, `$2`, ...
        case dollar
    }

    /// The statement text sent to PREPARE.
    public let sql: String
    /// What to bind to each parameter, in order.
    public let parameters: [Placeholder]

    public init(_ query: String, style: Style) throws(ConfigProblem) {
        let chars = Array(query)
        var out = ""
        var params: [Placeholder] = []
        var i = 0
        func emit(_ p: Placeholder) {
            params.append(p)
            out += style == .questionMark ? "?" : "$\(params.count)"
        }
        while i < chars.count {
            let c = chars[i]
            // '%u' as a whole literal: one parameter.
            if c == "'" || (c == "\"" && style == .questionMark), i + 3 < chars.count, chars[i + 1] == "%",
               let p = Placeholder(rawValue: chars[i + 2]), chars[i + 3] == c {
                emit(p)
                i += 4
                continue
            }
            switch c {
            case "'", "\"", "`":
                // A quoted literal or name, copied as is; a placeholder inside cannot be bound.
                var j = i + 1
                var closed = false
                while j < chars.count {
                    if chars[j] == "\\" && style == .questionMark && c != "`" { j += 2; continue }
                    if chars[j] == c {
                        if j + 1 < chars.count && chars[j + 1] == c { j += 2; continue }
                        closed = true
                        break
                    }
                    if chars[j] == "%", j + 1 < chars.count, Placeholder(rawValue: chars[j + 1]) != nil {
                        throw ConfigProblem("placeholder %\(chars[j + 1]) inside the literal \(String(chars[i...min(j + 1, chars.count - 1)]))...: "
                            + "a placeholder is bound as a whole value, write it alone ('%\(chars[j + 1])')")
                    }
                    j += 1
                }
                guard closed else { throw ConfigProblem("unterminated \(c) in the query") }
                out += String(chars[i...j])
                i = j + 1
            case "-" where i + 1 < chars.count && chars[i + 1] == "-",
                 "#" where style == .questionMark:
                var j = i
                while j < chars.count && chars[j] != "\n" { j += 1 }
                out += String(chars[i..<j])
                i = j
            case "/" where i + 1 < chars.count && chars[i + 1] == "*":
                var j = i + 2
                while j + 1 < chars.count && !(chars[j] == "*" && chars[j + 1] == "/") { j += 1 }
                j = min(j + 2, chars.count)
                out += String(chars[i..<j])
                i = j
            case "%" where i + 1 < chars.count && Placeholder(rawValue: chars[i + 1]) != nil:
                emit(Placeholder(rawValue: chars[i + 1])!)
                i += 2
            case "?" where style == .questionMark:
                throw ConfigProblem("write placeholders (%u, %c, %a, %C, %d, %P), not ?")
            case "$" where style == .dollar && i + 1 < chars.count && chars[i + 1].isNumber:
                throw ConfigProblem("write placeholders (%u, %c, %a, %C, %d, %P), not $\(chars[i + 1])")
            default:
                out.append(c)
                i += 1
            }
        }
        sql = out
        parameters = params
    }
}

extension PlaceholderValues {
    /// The values a sidecar's request carries: `%u`, `%c`, `%a`, `%C`, `%d` (and `%P` where
    /// a query needs the password).
    public init(_ c: IPCClient, password: [UInt8]? = nil) {
        self.init(username: c.username, clientId: c.clientId, ipAddress: c.peerAddress,
                  certCommonName: c.certCommonName, certSubject: c.certSubject, password: password)
    }
}
