import AuthBackends
import AuthRedis
import Foundation
import Logging
import SidecarKit

// swiftlet-auth-redis: emqttd_auth_redis as a Swiftlet sidecar. CONNECT runs authcmd (then
// supercmd and subcmd: subscriptions returned with the allow, protocol version 3), PUBLISH and
// SUBSCRIBE run aclcmd, on a pool of hiredis connections (Hiredis.swift); settings from
// [auth_redis] in its plugin file (etc/plugins/auth_redis.toml, docs/plugins/auth-redis.md).

let environment = SidecarEnvironment.current
let logger = SidecarLogging.makeLogger(name: environment.name ?? "auth_redis", environment: environment)

let settings: AuthRedisSettings
do {
    settings = try AuthRedisSettings(PluginConfig.load(environment))
} catch {
    logger.critical("\(error)")
    exit(2)
}
let described = [("supercmd", settings.supercmd), ("authcmd", settings.authcmd), ("aclcmd", settings.aclcmd),
                 ("subcmd", settings.subcmd)].map { name, c in c.map { "\(name)=\($0)" } ?? "\(name)=off" }
logger.info("auth_redis settings: Redis \(settings.endpoint.described), pool_size \(settings.poolSize), \(described.joined(separator: ", ")), password_hash \(settings.passwordHash), acl_nomatch \(settings.aclNomatch.rawValue)")

let endpoint = settings.endpoint
var poolLogger = logger
poolLogger[metadataKey: "redis"] = "\(endpoint.described)"
let pool = ConnectionPool<RedisConnection>(
    options: .init(size: settings.poolSize, maxQueue: settings.maxQueue,
                   acquireTimeout: .milliseconds(Int64(endpoint.commandTimeout * 1000)),
                   reconnectInitial: .milliseconds(100), reconnectMax: .milliseconds(Int64(settings.autoReconnect * 1000)),
                   keepAlive: settings.keepAlive.map { .milliseconds(Int64($0 * 1000)) }),
    driver: .init(connect: { try RedisConnection(endpoint) }, ping: { try $0.ping() }, close: { $0.close() }),
    logger: poolLogger)
pool.start()

// Concurrent requests share round trips: one pipeline per free connection.
let batcher = RedisBatcher(lanes: settings.poolSize, maxQueue: settings.maxQueue) { commands in
    try await pool.withConnection { try $0.pipeline(commands) }
}
let auth = RedisAuth(settings: settings, logger: logger) { try await batcher.execute($0) }

var handlers = SidecarHandlers()
if settings.authcmd != nil {
    handlers.onAuthenticate(order: settings.order) { await auth.authenticate($0) }
}
if settings.aclcmd != nil {
    handlers.onAuthorize(order: settings.order) { await auth.authorize($0) }
}
handlers.addAuthPluginCommand("auth_redis") {
    let reachable = pool.isReachable
    return ("Redis \(endpoint.described): \(reachable ? "reachable" : "unreachable"), pool_size \(settings.poolSize)",
            ["redis": endpoint.described, "reachable": reachable, "pool_size": settings.poolSize])
}

do {
    let sidecar = try Sidecar(name: "auth_redis", handlers: handlers, environment: environment, logger: logger)
    await sidecar.run()
    await pool.shutdown()
} catch {
    logger.critical("\(error)")
    exit(2)
}
