import AuthSQL
import Foundation
import Logging
import SidecarKit

// swiftlet-auth-sql: emqttd_auth_mysql and emqttd_auth_pgsql as a Swiftlet sidecar. CONNECT
// asks authquery (then superquery), PUBLISH/SUBSCRIBE ask aclquery, as prepared statements
// on a pool of MariaDB (MariaDB.swift) or PostgreSQL (PostgreSQL.swift) connections; the pool
// table of the plugin file decides which. Settings: the [<plugin name>] table of
// etc/plugins/auth_mysql.toml / auth_pgsql.toml (docs/plugins/auth-sql.md).

let environment = SidecarEnvironment.current
let pluginName = environment.name ?? "auth_sql"
let logger = SidecarLogging.makeLogger(name: pluginName, environment: environment)

let settings: SQLSettings
do {
    settings = try SQLSettings(PluginConfig.load(environment), plugin: pluginName)
} catch {
    logger.critical("\(error)")
    exit(2)
}
let where_ = settings.pool.isUnixSocket ? settings.pool.host : "\(settings.pool.host):\(settings.pool.port)"
logger.info("\(pluginName): \(settings.driver == .mysql ? "MariaDB/MySQL" : "PostgreSQL") at \(where_), database \(settings.pool.database), pool_size \(settings.pool.size), password_hash \(settings.passwordHash), acl \(settings.aclQuery == nil ? "off" : "on, acl_nomatch \(settings.aclNomatch.rawValue)")")

let (database, closeDatabase, reachable) = makeDatabase(settings, logger: logger)
let service = SQLAuthService(settings: settings, database: database, logger: logger)
var handlers = SidecarHandlers()
if settings.authQuery != nil {
    handlers.onAuthenticate(order: settings.order) { await service.authenticate($0) }
}
if settings.aclQuery != nil {
    handlers.onAuthorize(order: settings.order) { await service.authorize($0) }
}

do {
    let server = "\(settings.driver == .mysql ? "MariaDB/MySQL" : "PostgreSQL") \(where_)/\(settings.pool.database)"
    handlers.addAuthPluginCommand(pluginName) {
        let up = reachable()
        return ("\(server): \(up ? "reachable" : "unreachable"), pool_size \(settings.pool.size)",
                ["server": server, "reachable": up, "pool_size": settings.pool.size])
    }
    let sidecar = try Sidecar(name: pluginName, handlers: handlers, environment: environment, logger: logger)
    await sidecar.run()
    await closeDatabase()
} catch {
    logger.critical("\(error)")
    exit(2)
}
