import AuthHTTP
import Foundation
import Logging
import SidecarKit

// swiftlet-auth-http: emqttd_auth_http as a Swiftlet sidecar. CONNECT asks auth_req (then
// super_req), PUBLISH/SUBSCRIBE ask acl_req, over HTTP with libcurl (Curl.swift); settings
// from [auth_http] in its plugin file (etc/plugins/auth_http.toml, docs/plugins/auth-http.md).

let environment = SidecarEnvironment.current
let logger = SidecarLogging.makeLogger(name: environment.name ?? "auth_http", environment: environment)

let settings: AuthHTTPSettings
let http: CurlClient
do {
    settings = try AuthHTTPSettings(PluginConfig.load(environment))
    http = try CurlClient(maxConnections: settings.maxConnections, maxBody: settings.maxBody, logger: logger)
} catch {
    logger.critical("\(error)")
    exit(2)
}
let described = [("auth_req", settings.authReq), ("super_req", settings.superReq), ("acl_req", settings.aclReq)]
    .map { name, r in r.map { "\(name)=\($0.method.rawValue) \($0.url)" } ?? "\(name)=off" }
logger.info("auth_http settings: \(described.joined(separator: ", "))")

let service = AuthHTTPService(settings: settings, http: http, logger: logger)
var handlers = SidecarHandlers()
if settings.authReq != nil {
    handlers.onAuthenticate(order: settings.order) { await service.authenticate($0) }
}
if settings.aclReq != nil {
    handlers.onAuthorize(order: settings.order) { await service.authorize($0) }
}

do {
    let sidecar = try Sidecar(name: "auth_http", handlers: handlers, environment: environment, logger: logger)
    var admin: AdminServer?
    if let address = settings.adminListen {
        admin = try await AdminServer.start(address, sidecar: sidecar, logger: logger)
    }
    await sidecar.run()
    await admin?.close()
    http.shutdown()
} catch {
    logger.critical("\(error)")
    exit(2)
}
