/// What an HTTP answer means, as in emqttd_auth_http: 200 allows (for super_req: is a
/// superuser), 4xx denies, a body of `ignore` (200 or 4xx) passes to the next provider, and
/// everything else (5xx, any other status, a timeout, a connection error, a body over the
/// limit) is an error: the broker applies its fallback and caches nothing.
public enum Verdict: Sendable, Equatable {
    case allow
    case deny(status: Int)
    case ignore
    case error(String)

    public static func of(status: Int, body: [UInt8]) -> Verdict {
        let ignorable = status == 200 || (400...499).contains(status)
        if ignorable, isIgnore(body) { return .ignore }
        switch status {
        case 200: return .allow
        case 400...499: return .deny(status: status)
        case 500...599: return .error("HTTP \(status)")
        default: return .error("unexpected HTTP status \(status)")
        }
    }

    /// `ignore`, with surrounding whitespace (a trailing newline) allowed.
    static func isIgnore(_ body: [UInt8]) -> Bool {
        guard body.count <= 64 else { return false }
        let ws: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        return Array(body.drop(while: ws.contains).reversed().drop(while: ws.contains).reversed()) == Array("ignore".utf8)
    }
}
