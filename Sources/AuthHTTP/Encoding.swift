/// Percent-encoding and JSON string encoding of placeholder values. Every byte outside
/// RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`) is sent as `%XX`, exactly as
/// curl_easy_escape does, so `&`, `=`, `%`, `+`, `#`, spaces, newlines and UTF-8 reach the
/// server as one value in a query string, a form body or a URL path segment.
public enum Encoding {
    private static let hex = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    public static func percentEncode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes {
            if isUnreserved(b) {
                out.append(b)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0F)]]
            }
        }
        return out
    }

    public static func percentEncode(_ s: String) -> [UInt8] { percentEncode(Array(s.utf8)) }

    /// `k1=v1&k2=v2`, keys and values percent-encoded (application/x-www-form-urlencoded;
    /// a space is `%20`, which every form decoder accepts).
    public static func form(_ pairs: [(key: String, value: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        for (i, p) in pairs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "&")) }
            out += percentEncode(p.key)
            out.append(UInt8(ascii: "="))
            out += percentEncode(p.value)
        }
        return out
    }

    /// A JSON object of string members, in the given order. Values that are not valid UTF-8
    /// (a binary password) are decoded with replacement characters: JSON cannot carry them.
    public static func jsonObject(_ pairs: [(key: String, value: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, p) in pairs.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += jsonString(Array(p.key.utf8))
            out.append(UInt8(ascii: ":"))
            out += jsonString(p.value)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func jsonString(_ bytes: [UInt8]) -> [UInt8] {
        let text = String(decoding: bytes, as: UTF8.self)
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0x00..<0x20, 0x7F:
                out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 0x0F)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }
}
