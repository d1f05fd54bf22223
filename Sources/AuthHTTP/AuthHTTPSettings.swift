import SidecarKit

/// The `[auth_http]` table of etc/plugins/auth_http.toml, read once at start-up.
public struct AuthHTTPSettings: Sendable, Equatable {
    /// Position in the broker's auth chain (lower is asked first; built-in: 1000).
    public var order: UInt16 = 100
    /// How long the broker may cache an answer, ms (0: the broker's `cache_ttl_allow`/`_deny`).
    public var ttlMs: UInt32 = 0
    /// Largest response body read, bytes; a longer one is an error, never buffered whole.
    public var maxBody = 65_536
    /// Connections kept open to the HTTP service (keep-alive, shared by all requests).
    public var maxConnections = 32
    /// `host:port` of the admin endpoint (`POST /invalidate`), loopback only; nil: off.
    public var adminListen: String?
    public var authReq: RequestTemplate?
    public var superReq: RequestTemplate?
    public var aclReq: RequestTemplate?

    /// Under the broker's `[sidecars] request_timeout` (5 s), so that the sidecar reports a slow
    /// service itself rather than the broker giving up on the sidecar.
    public static let defaultTimeout = 4.0

    public init() {}

    public init(_ config: PluginConfig) throws {
        let s = try config.sectionOrEmpty("auth_http")
        try s.checkKeys(allowed: ["order", "ttl_ms", "max_body", "max_connections", "admin_listen", "timeout",
                                  "tls", "auth_req", "super_req", "acl_req"])
        if let v = try s.int("order", range: 0...65_535) { order = UInt16(v) }
        if let v = try s.int("ttl_ms", range: 0...86_400_000) { ttlMs = UInt32(v) }
        if let v = try s.int("max_body", range: 64...(16 << 20)) { maxBody = v }
        if let v = try s.int("max_connections", range: 1...1024) { maxConnections = v }
        if let v = try s.string("admin_listen"), !v.isEmpty {
            guard let (host, _) = Self.splitHostPort(v), ["127.0.0.1", "::1", "localhost"].contains(host) else {
                throw s.error("admin_listen", "must be a loopback address with a port, e.g. \"127.0.0.1:8991\"")
            }
            adminListen = v
        }
        let timeout = try s.double("timeout", range: 0.001...3600) ?? Self.defaultTimeout
        let tls = try Self.tls(s.section("tls")) ?? TLSOptions()
        authReq = try Self.request(s.section("auth_req"), timeout: timeout, tls: tls)
        superReq = try Self.request(s.section("super_req"), timeout: timeout, tls: tls)
        aclReq = try Self.request(s.section("acl_req"), timeout: timeout, tls: tls)
        if superReq != nil && authReq == nil {
            throw s.error("super_req", "needs auth_req (the superuser question follows a successful authentication)")
        }
        if authReq == nil && aclReq == nil {
            throw s.error("auth_req", "is required (or acl_req): with neither the plugin has nothing to do")
        }
    }

    static func tls(_ t: ConfigSection?) throws -> TLSOptions? {
        guard let t else { return nil }
        try t.checkKeys(allowed: ["cafile", "certfile", "keyfile", "verify"])
        let o = TLSOptions(caFile: try t.string("cafile"), certFile: try t.string("certfile"),
                           keyFile: try t.string("keyfile"), verify: try t.bool("verify") ?? true)
        if (o.certFile == nil) != (o.keyFile == nil) {
            throw t.error(o.certFile == nil ? "certfile" : "keyfile", "certfile and keyfile go together")
        }
        return o
    }

    static func request(_ r: ConfigSection?, timeout: Double, tls: TLSOptions) throws -> RequestTemplate? {
        guard let r else { return nil }
        try r.checkKeys(allowed: ["method", "url", "params", "headers", "timeout", "content_type", "tls"])
        let url = try r.require("url", r.string)
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw r.error("url", "must start with http:// or https://")
        }
        var t = RequestTemplate(url: url)
        t.method = try r.choice("method", ["get", "post"]).flatMap { $0 == "get" ? .get : .post } ?? .post
        t.encoding = try r.choice("content_type", ["form", "json"]).flatMap(BodyEncoding.init(rawValue:)) ?? .form
        t.timeout = try r.double("timeout", range: 0.001...3600) ?? timeout
        t.tls = try Self.tls(r.section("tls")) ?? tls
        switch r.table["params"] {
        case nil:
            t.params = []
        case let v? where v.string != nil:
            do { t.params = try RequestTemplate.parseParams(v.string!) } catch { throw r.error("params", "\(error)") }
        case let v? where v.table != nil:
            let p = try r.section("params")!
            t.params = try p.keys.map { RequestTemplate.Param($0, try p.require($0, p.string)) }
        default:
            throw r.error("params", "must be a string (\"username=%u,password=%P\") or a table of strings")
        }
        if let h = try r.section("headers") {
            t.headers = try h.keys.map { k in
                let v = try h.require(k, h.string)
                guard !k.isEmpty, !k.contains(":"), !(k + v).contains(where: { $0 == "\r" || $0 == "\n" }) else {
                    throw h.error(k, "must be a header name and a one-line value")
                }
                return RequestTemplate.Param(k, v)
            }
        }
        return t
    }

    /// "127.0.0.1:8991" / "[::1]:8991" -> (host, port).
    public static func splitHostPort(_ s: String) -> (String, Int)? {
        let host: Substring
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65_535).contains(port) else { return nil }
        return (String(host), port)
    }
}
