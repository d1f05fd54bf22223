import AuthBackends
import AuthMongo
import Logging

/// The plugin's database: AuthBackends' ConnectionPool (at most `pool_size` finds at once, a
/// bounded queue, reconnects with capped backoff, `error` at once while MongoDB is down) over
/// clients of libmongoc's `mongoc_client_pool`.
final class PooledMongoDatabase: MongoDatabase {
    let pool: ConnectionPool<MongoConnection>
    let clients: MongoClientPool

    init(settings: AuthMongoSettings, logger: Logger) throws {
        let clients = try MongoClientPool(settings, logger: logger)
        let p = settings.pool
        let options = ConnectionPool<MongoConnection>.Options(
            size: p.size, maxQueue: settings.maxQueue,
            acquireTimeout: .milliseconds(Int64(settings.queryTimeout * 1000)),
            reconnectInitial: .milliseconds(100), reconnectMax: .milliseconds(Int64(p.autoReconnect * 1000)),
            keepAlive: p.keepAlive.map { .milliseconds(Int64($0 * 1000)) })
        let driver = ConnectionPool<MongoConnection>.Driver(
            connect: { try clients.open() },
            ping: { try $0.ping() },
            close: { clients.close($0) },
            isHealthy: { !$0.broken })
        var poolLogger = logger
        poolLogger[metadataKey: "mongodb"] = "\(p.described)"
        self.clients = clients
        self.pool = ConnectionPool(options: options, driver: driver, logger: poolLogger)
    }

    func find(_ f: MongoFind) async throws -> [MongoDocument] {
        try await pool.withConnection { try $0.find(f) }
    }

    func find(_ first: MongoFind, then second: MongoFind,
              when next: @escaping @Sendable ([MongoDocument]) -> Bool) async throws
        -> ([MongoDocument], Result<[MongoDocument], BackendError>?) {
        try await pool.withConnection { c in
            let r = try c.find(first)
            guard next(r) else { return (r, nil) }
            // A broken client marks itself (isHealthy): the pool replaces it on release.
            do {
                return (r, .success(try c.find(second)))
            } catch {
                return (r, .failure(error as? BackendError ?? .query("\(error)")))
            }
        }
    }
}
