import AuthBackends
import AuthSQL
import Logging
import NIOCore

/// The plugin's database: a ConnectionPool of MariaDB or PostgreSQL connections (the pool
/// table of the plugin file decides) running its three prepared queries.
final class PooledSQLDatabase<Connection: Sendable>: SQLDatabase {
    let pool: ConnectionPool<Connection>
    let queries: [SQLQueryKind: String]
    let maxRows: Int
    let maxFieldBytes: Int
    let execute: @Sendable (Connection, SQLQueryKind, String, [[UInt8]?], Int, Int) throws -> SQLResult

    init(settings: SQLSettings, driver: ConnectionPool<Connection>.Driver, logger: Logger,
         execute: @escaping @Sendable (Connection, SQLQueryKind, String, [[UInt8]?], Int, Int) throws -> SQLResult) {
        let p = settings.pool
        let options = ConnectionPool<Connection>.Options(
            size: p.size, maxQueue: settings.maxQueue,
            acquireTimeout: .milliseconds(Int64(settings.queryTimeout * 1000)),
            reconnectInitial: .milliseconds(100), reconnectMax: .milliseconds(Int64(p.autoReconnect * 1000)),
            keepAlive: p.keepAlive.map { .milliseconds(Int64($0 * 1000)) })
        pool = ConnectionPool(options: options, driver: driver, logger: logger)
        var q: [SQLQueryKind: String] = [:]
        q[.auth] = settings.authQuery?.sql
        q[.superuser] = settings.superQuery?.sql
        q[.acl] = settings.aclQuery?.sql
        queries = q
        maxRows = settings.maxRows
        maxFieldBytes = settings.maxFieldBytes
        self.execute = execute
    }

    func run(_ kind: SQLQueryKind, parameters: [[UInt8]?]) async throws -> SQLResult {
        guard let sql = queries[kind] else { throw BackendError.query("no \(kind) query configured") }
        let (maxRows, maxFieldBytes, execute) = (self.maxRows, self.maxFieldBytes, self.execute)
        return try await pool.withConnection { c in try execute(c, kind, sql, parameters, maxRows, maxFieldBytes) }
    }
}

/// The database for `settings`, its pool started.
func makeDatabase(_ settings: SQLSettings, logger: Logger) -> (any SQLDatabase, shutdown: @Sendable () async -> Void) {
    let p = settings.pool
    let timeout = settings.queryTimeout
    switch settings.driver {
    case .mysql:
        let driver = ConnectionPool<MariaDBConnection>.Driver(
            connect: { try MariaDBConnection(p, queryTimeout: timeout) },
            ping: { try $0.ping() }, close: { $0.close() }, isHealthy: { !$0.broken })
        let db = PooledSQLDatabase(settings: settings, driver: driver, logger: logger) { c, kind, sql, values, rows, bytes in
            try c.run(kind, sql, values, maxRows: rows, maxFieldBytes: bytes)
        }
        db.pool.start()
        return (db, { await db.pool.shutdown() })
    case .pgsql:
        let driver = ConnectionPool<PostgreSQLConnection>.Driver(
            connect: { try PostgreSQLConnection(p, queryTimeout: timeout) },
            ping: { try $0.ping() }, close: { $0.close() }, isHealthy: { !$0.broken })
        let db = PooledSQLDatabase(settings: settings, driver: driver, logger: logger) { c, kind, sql, values, rows, bytes in
            try c.run(kind, sql, values, maxRows: rows, maxFieldBytes: bytes)
        }
        db.pool.start()
        return (db, { await db.pool.shutdown() })
    }
}
