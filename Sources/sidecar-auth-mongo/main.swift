import AuthMongo
import Foundation
import Logging
import SidecarKit

// swiftlet-auth-mongo: emqttd_auth_mongo as a Swiftlet sidecar. CONNECT runs authquery (then
// superquery), PUBLISH and SUBSCRIBE run aclquery, as finds on clients of libmongoc's client
// pool (Mongoc.swift); settings from [auth_mongo] in its plugin file
// (etc/plugins/auth_mongo.toml, docs/plugins/auth-mongo.md).

let environment = SidecarEnvironment.current
let pluginName = environment.name ?? AuthMongoSettings.plugin
let logger = SidecarLogging.makeLogger(name: pluginName, environment: environment)

let settings: AuthMongoSettings
let database: PooledMongoDatabase
do {
    settings = try AuthMongoSettings(PluginConfig.load(environment), plugin: pluginName)
    database = try PooledMongoDatabase(settings: settings, logger: logger)
} catch {
    logger.critical("\(error)")
    exit(2)
}
func describe(_ name: String, _ q: MongoQuery?) -> String {
    q.map { "\(name)=\($0.collection) \($0.selector.described)" } ?? "\(name)=off"
}
logger.info("\(pluginName): MongoDB \(settings.pool.described), pool_size \(settings.pool.size), \(describe("superquery", settings.superQuery?.query)), \(describe("authquery", settings.authQuery?.query)), password_hash \(settings.authQuery?.passwordHash.description ?? "-"), \(describe("aclquery", settings.aclQuery)), acl_nomatch \(settings.aclNomatch.rawValue)")
database.pool.start()

let service = MongoAuthService(settings: settings, database: database, logger: logger)
var handlers = SidecarHandlers()
if settings.authQuery != nil {
    handlers.onAuthenticate(order: settings.order) { await service.authenticate($0) }
}
if settings.aclQuery != nil {
    handlers.onAuthorize(order: settings.order) { await service.authorize($0) }
}

handlers.addAuthPluginCommand(pluginName) {
    let reachable = database.pool.isReachable
    let p = settings.pool
    return ("MongoDB \(p.described): \(reachable ? "reachable" : "unreachable"), pool_size \(p.size)",
            ["mongodb": p.described, "reachable": reachable, "pool_size": p.size])
}

do {
    let sidecar = try Sidecar(name: pluginName, handlers: handlers, environment: environment, logger: logger)
    await sidecar.run()
    // The mongoc pool is left to the process's exit: a client still out on a pool thread
    // must not outlive it.
    await database.pool.shutdown()
} catch {
    logger.critical("\(error)")
    exit(2)
}
