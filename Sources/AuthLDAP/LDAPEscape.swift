/// Escaping of values placed into LDAP strings, so that a client's username (or client id)
/// is always one attribute value, never DN or filter syntax. Pure functions over UTF-8 bytes;
/// the result is again valid UTF-8 (only ASCII is escaped).
public enum LDAPEscape {
    /// An attribute value inside a distinguished name (RFC 4514 section 2.4): `"`, `+`, `,`,
    /// `;`, `<`, `>`, `\` and `=` get a backslash; a leading space or `#` and a trailing space
    /// get one too (a leading `#` would otherwise start a BER-encoded value); NUL and the other
    /// control characters become `\XX` (NUL must, the rest may be, escaped so). Anything else,
    /// non-ASCII UTF-8 included, stays as it is.
    public static func dnValue(_ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(value.count + 8)
        for (i, b) in value.enumerated() {
            switch b {
            case 0x22, 0x2B, 0x2C, 0x3B, 0x3C, 0x3E, 0x5C, 0x3D:   // " + , ; < > \ =
                out += [0x5C, b]
            case 0x20 where i == 0 || i == value.count - 1,        // space first or last
                 0x23 where i == 0:                                 // # first
                out += [0x5C, b]
            case 0x00..<0x20, 0x7F:
                out += hex(b)
            default:
                out.append(b)
            }
        }
        return out
    }

    /// An assertion value inside a search filter (RFC 4515 section 3): `*`, `(`, `)`, `\`
    /// and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`, so that a username cannot add a
    /// wildcard or a filter component. Anything else stays as it is.
    public static func filterValue(_ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(value.count + 8)
        for b in value {
            switch b {
            case 0x2A, 0x28, 0x29, 0x5C, 0x00: out += hex(b)
            default: out.append(b)
            }
        }
        return out
    }

    public static func dnValue(_ value: String) -> String { String(decoding: dnValue(Array(value.utf8)), as: UTF8.self) }
    public static func filterValue(_ value: String) -> String { String(decoding: filterValue(Array(value.utf8)), as: UTF8.self) }

    private static let digits = Array("0123456789abcdef".utf8)

    /// `\XX`, lower-case hex.
    private static func hex(_ b: UInt8) -> [UInt8] { [0x5C, digits[Int(b >> 4)], digits[Int(b & 0x0F)]] }
}
