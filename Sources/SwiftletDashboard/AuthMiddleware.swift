import Foundation
import HTTPTypes
import Hummingbird

/// Who may call what. Open: login, health, the OpenAPI document, the UI's files and (unless
/// `prometheus_auth`) the Prometheus endpoints. Everything else needs a Bearer token, an API
/// key (HTTP Basic key:secret) or the session cookie; with the cookie, a request that changes
/// something also needs `X-CSRF-Token` (a cross-site form cannot send it). Until the default
/// admin has changed its password, it may only change it or log out.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = DashboardContext
    let dashboard: Dashboard

    static func bearer(_ req: Request) -> String? {
        guard let h = req.headers[.authorization], h.lowercased().hasPrefix("bearer ") else { return nil }
        return String(h.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    static func basic(_ req: Request) -> (String, String)? {
        guard let h = req.headers[.authorization], h.lowercased().hasPrefix("basic "),
              let data = Data(base64Encoded: String(h.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    static func cookie(_ req: Request) -> String? {
        for header in req.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces)
                if kv.hasPrefix("swiftlet_session=") { return String(kv.dropFirst("swiftlet_session=".count)) }
            }
        }
        return nil
    }

    func isOpen(_ req: Request) -> Bool {
        let path = req.uri.path
        if req.method == .post && path == "/api/v5/login" { return true }
        if req.method == .get || req.method == .head {
            if ["/status", "/api/v5/status", "/api/v5/openapi.json", "/", "/index.html"].contains(path) || path.hasPrefix("/static/") {
                return true
            }
            if !dashboard.config.prometheusAuth && (path == "/api/v5/prometheus/stats" || path == "/metrics") { return true }
        }
        return false
    }

    func handle(_ req: Request, context: DashboardContext, next: (Request, DashboardContext) async throws -> Response) async throws -> Response {
        guard !isOpen(req) else { return try await next(req, context) }
        var ctx = context
        if let token = Self.bearer(req) {
            ctx.admin = try session(token).username
        } else if let (key, secret) = Self.basic(req) {
            guard let name = await dashboard.admins.verifyKey(key, secret) else {
                throw APIError(.unauthorized, "BAD_API_KEY_OR_SECRET", "unknown, disabled or expired API key, or a wrong secret")
            }
            ctx.admin = "api_key:\(name)"
            return try await next(req, ctx)
        } else if let token = Self.cookie(req) {
            let s = try session(token)
            if req.method != .get && req.method != .head && req.headers[HTTPField.Name("X-CSRF-Token")!] != s.csrf {
                throw APIError(.forbidden, "FORBIDDEN", "missing or wrong X-CSRF-Token for a cookie session")
            }
            ctx.admin = s.username
            ctx.viaCookie = true
        } else {
            throw APIError(.unauthorized, "UNAUTHORIZED", "log in first (POST /api/v5/login) and send Authorization: Bearer TOKEN")
        }
        if let name = ctx.admin, dashboard.admins.admin(name)?.mustChange == true {
            let path = req.uri.path
            let allowed = path == "/api/v5/logout" || (req.method == .post && path == "/api/v5/users/\(name)/change_pwd")
            if !allowed {
                throw APIError(.forbidden, "PASSWORD_CHANGE_REQUIRED",
                               "change the default password first: POST /api/v5/users/\(name)/change_pwd {\"old_pwd\",\"new_pwd\"}")
            }
        }
        return try await next(req, ctx)
    }

    private func session(_ token: String) throws -> TokenStore.Session {
        switch dashboard.tokens.lookup(token) {
        case .valid(let s):
            guard dashboard.admins.admin(s.username) != nil else {
                throw APIError(.unauthorized, "UNAUTHORIZED", "this admin no longer exists")
            }
            return s
        case .expired: throw APIError(.unauthorized, "TOKEN_TIME_OUT", "the token expired; log in again")
        case .unknown: throw APIError(.unauthorized, "UNAUTHORIZED", "unknown token; log in again")
        }
    }
}
