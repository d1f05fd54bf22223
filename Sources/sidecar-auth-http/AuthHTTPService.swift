import AuthHTTP
import Logging
import SidecarKit

/// The emqttd_auth_http decisions: auth_req (then super_req) for CONNECT, acl_req for
/// PUBLISH and SUBSCRIBE, each answer mapped by `Verdict`.
struct AuthHTTPService: Sendable {
    let settings: AuthHTTPSettings
    let http: CurlClient
    let logger: Logger

    func authenticate(_ request: AuthnRequest) async -> AuthnAnswer {
        guard let authReq = settings.authReq else { return .ignore }
        let values = PlaceholderValues(client: request.client, password: request.password)
        switch await ask("auth_req", authReq, values, request.client) {
        case .allow:
            return .allow(superuser: await isSuperuser(values, request.client), ttlMs: settings.ttlMs, reason: "auth_req: 200")
        case .deny(let status):
            return .deny("auth_req: HTTP \(status)", ttlMs: settings.ttlMs)
        case .ignore:
            return .ignore
        case .error(let why):
            return .error("auth_req: \(why)")
        }
    }

    /// super_req after a successful auth_req, as emqttd does: only a 200 makes a superuser;
    /// a denial, "ignore" or an error leaves the client a normal user.
    func isSuperuser(_ values: PlaceholderValues, _ client: IPCClient) async -> Bool {
        guard let superReq = settings.superReq else { return false }
        return await ask("super_req", superReq, values, client) == .allow
    }

    func authorize(_ request: AuthzRequest) async -> AuthzAnswer {
        guard let aclReq = settings.aclReq else { return .ignore }
        let values = PlaceholderValues(client: request.client, topic: request.topic, access: request.access)
        switch await ask("acl_req", aclReq, values, request.client) {
        case .allow:
            return .allow(ttlMs: settings.ttlMs, reason: "acl_req: 200")
        case .deny(let status):
            return .deny("acl_req: HTTP \(status)", ttlMs: settings.ttlMs)
        case .ignore:
            return .ignore
        case .error(let why):
            return .error("acl_req: \(why)")
        }
    }

    /// One HTTP exchange. Errors are logged with the URL without its query (a GET query
    /// carries the password) and the client id.
    func ask(_ name: String, _ template: RequestTemplate, _ values: PlaceholderValues, _ client: IPCClient) async -> Verdict {
        let request = template.render(values)
        let verdict: Verdict
        do {
            let response = try await http.perform(request)
            verdict = Verdict.of(status: response.status, body: response.body)
        } catch {
            verdict = .error("\(error)")
        }
        if case .error(let why) = verdict {
            logger.warning("\(name) failed: \(why)", metadata: [
                "http.method": "\(request.method.rawValue)", "http.url": "\(request.redactedURL)",
                "mqtt.client_id": "\(client.clientId)",
            ])
        } else {
            logger.debug("\(name): \(verdict)", metadata: ["mqtt.client_id": "\(client.clientId)"])
        }
        return verdict
    }
}
