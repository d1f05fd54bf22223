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

let (database, closeDatabase) = makeDatabase(settings, logger: logger)
let service = SQLAuthService(settings: settings, database: database, logger: logger)
var handlers = SidecarHandlers()
if settings.authQuery != nil {
    handlers.onAuthenticate(order: settings.order) { await service.authenticate($0) }
}
if settings.aclQuery != nil {
    handlers.onAuthorize(order: settings.order) { await service.authorize($0) }
}

do {
    let box = SidecarBox()
    handlers.addCommand(pluginName, usage: "\(pluginName) invalidate user NAME | client ID | all: drops the broker's cached decisions") { args in
        await invalidateCommand(pluginName, args, box.sidecar)
    }
    let sidecar = try Sidecar(name: pluginName, handlers: handlers, environment: environment, logger: logger)
    box.sidecar = sidecar
    await sidecar.run()
    await closeDatabase()
} catch {
    logger.critical("\(error)")
    exit(2)
}
