import AuthLDAP
import Foundation
import Logging
import SidecarKit

// swiftlet-auth-ldap: emqttd_auth_ldap as a Swiftlet sidecar. Bind mode (the seed's): CONNECT
// binds as user_dn with the username RFC 4514-escaped. Search mode: a service account finds the
// user's entry (filter RFC 4515-escaped), then the sidecar binds as it; superuser_group and ACL
// attributes. Pools of libldap connections (LDAPConnection.swift) with failover over servers;
// settings from [auth_ldap] in its plugin file (etc/plugins/auth_ldap.toml,
// docs/plugins/auth-ldap.md).

// SIGPIPE is ignored by SidecarKit (Sidecar.run): libldap's writes to a closed server socket
// are errors on that connection.

let environment = SidecarEnvironment.current
let logger = SidecarLogging.makeLogger(name: environment.name ?? "auth_ldap", environment: environment)

let settings: AuthLDAPSettings
do {
    settings = try AuthLDAPSettings(PluginConfig.load(environment))
} catch {
    logger.critical("\(error)")
    exit(2)
}
logger.info("auth_ldap settings: \(settings.described)")

let directory = PooledDirectory(settings: settings, logger: logger)
directory.start()
let auth = LDAPAuth(settings: settings, directory: directory, logger: logger)

var handlers = SidecarHandlers()
handlers.onAuthenticate(order: settings.order) { await auth.authenticate($0) }
if settings.answersACL {
    handlers.onAuthorize(order: settings.order) { await auth.authorize($0) }
}
handlers.addAuthPluginCommand(environment.name ?? "auth_ldap") {
    let reachable = directory.isReachable
    let servers = settings.servers.map { $0.host.contains(":") ? "[\($0.host)]:\($0.port)" : "\($0.host):\($0.port)" }
    return ("LDAP \(servers.joined(separator: ", ")): \(reachable ? "reachable" : "unreachable"), pool_size \(settings.poolSize)",
            ["servers": servers, "reachable": reachable, "pool_size": settings.poolSize])
}

do {
    let sidecar = try Sidecar(name: environment.name ?? "auth_ldap", handlers: handlers, environment: environment, logger: logger)
    await sidecar.run()
    await directory.shutdown()
} catch {
    logger.critical("\(error)")
    exit(2)
}
