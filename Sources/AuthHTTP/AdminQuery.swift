import SidecarKit

/// The query of the admin endpoint's `POST /invalidate`.
public enum AdminQuery {
    /// The scopes a query asks for (`username=`, `clientid=`, `all=1`; repeatable); nil when
    /// it names none.
    public static func scopes(_ query: String) -> [InvalidateScope]? {
        var scopes: [InvalidateScope] = []
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = kv.count > 1 ? formDecode(kv[1]) : ""
            switch String(kv[0]) {
            case "username": scopes.append(.username(value))
            case "clientid", "client_id": scopes.append(.clientId(value))
            case "all" where value != "0" && value != "false": scopes.append(.all)
            default: continue
            }
        }
        return scopes.isEmpty ? nil : scopes
    }

    /// application/x-www-form-urlencoded decoding: `+` is a space, `%XX` a byte; a `%` not
    /// followed by two hex digits is kept.
    public static func formDecode(_ s: Substring) -> String {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let hi = hex(b[i + 1]), let lo = hex(b[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b[i] == UInt8(ascii: "+") ? 0x20 : b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
