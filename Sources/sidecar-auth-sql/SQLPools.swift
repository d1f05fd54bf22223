import AuthBackends
import AuthSQL
import Logging
import NIOCore

/// What MariaDBConnection and PostgreSQLConnection both offer the pool.
protocol SQLConnection: AnyObject, Sendable {
    init(_ p: SQLPoolSettings, queryTimeout: Double) throws
    var broken: Bool { get }
    func ping() throws
    func close()
    func run(_ kind: SQLQueryKind, _ sql: String, _ values: [[UInt8]?], maxRows: Int, maxFieldBytes: Int) throws -> SQLResult
}

extension MariaDBConnection: SQLConnection {}
extension PostgreSQLConnection: SQLConnection {}

/// The plugin's database: a ConnectionPool of MariaDB or PostgreSQL connections (the pool
/// table of the plugin file decides) running its three prepared queries.
final class PooledSQLDatabase<Connection: SQLConnection>: SQLDatabase {
    let pool: ConnectionPool<Connection>
    let queries: [SQLQueryKind: String]
    let maxRows: Int
    let maxFieldBytes: Int

    init(settings: SQLSettings, logger: Logger) {
        let p = settings.pool
        let timeout = settings.queryTimeout
        let options = ConnectionPool<Connection>.Options(
            size: p.size, maxQueue: settings.maxQueue,
            acquireTimeout: .milliseconds(Int64(timeout * 1000)),
            reconnectInitial: .milliseconds(100), reconnectMax: .milliseconds(Int64(p.autoReconnect * 1000)),
            keepAlive: p.keepAlive.map { .milliseconds(Int64($0 * 1000)) })
        let driver = ConnectionPool<Connection>.Driver(
            connect: { try Connection(p, queryTimeout: timeout) },
            ping: { try $0.ping() }, close: { $0.close() }, isHealthy: { !$0.broken })
        pool = ConnectionPool(options: options, driver: driver, logger: logger)
        var q: [SQLQueryKind: String] = [:]
        q[.auth] = settings.authQuery?.sql
        q[.superuser] = settings.superQuery?.sql
        q[.acl] = settings.aclQuery?.sql
        queries = q
        maxRows = settings.maxRows
        maxFieldBytes = settings.maxFieldBytes
    }

    func run(_ kind: SQLQueryKind, parameters: [[UInt8]?]) async throws -> SQLResult {
        guard let sql = queries[kind] else { throw BackendError.query("no \(kind) query configured") }
        let (maxRows, maxFieldBytes) = (self.maxRows, self.maxFieldBytes)
        return try await pool.withConnection { c in try c.run(kind, sql, parameters, maxRows: maxRows, maxFieldBytes: maxFieldBytes) }
    }

    func run(_ first: SQLQueryKind, parameters: [[UInt8]?], then second: SQLQueryKind, parameters secondParameters: [[UInt8]?],
             when next: @escaping @Sendable (SQLResult) -> Bool) async throws -> (SQLResult, Result<SQLResult, BackendError>?) {
        guard let sql = queries[first], let secondSQL = queries[second] else {
            throw BackendError.query("no \(first) or \(second) query configured")
        }
        let (maxRows, maxFieldBytes) = (self.maxRows, self.maxFieldBytes)
        return try await pool.withConnection { c in
            let r = try c.run(first, sql, parameters, maxRows: maxRows, maxFieldBytes: maxFieldBytes)
            guard next(r) else { return (r, nil) }
            // A broken connection marks itself (isHealthy): the pool replaces it on release.
            do {
                return (r, .success(try c.run(second, secondSQL, secondParameters, maxRows: maxRows, maxFieldBytes: maxFieldBytes)))
            } catch {
                return (r, .failure(error as? BackendError ?? .query("\(error)")))
            }
        }
    }
}

/// The database for `settings`, its pool started, how to close it and whether it is reachable.
func makeDatabase(_ settings: SQLSettings, logger: Logger)
    -> (any SQLDatabase, shutdown: @Sendable () async -> Void, reachable: @Sendable () -> Bool) {
    func start<C: SQLConnection>(_: C.Type) -> (any SQLDatabase, shutdown: @Sendable () async -> Void, reachable: @Sendable () -> Bool) {
        let db = PooledSQLDatabase<C>(settings: settings, logger: logger)
        db.pool.start()
        return (db, { await db.pool.shutdown() }, { db.pool.isReachable })
    }
    switch settings.driver {
    case .mysql: return start(MariaDBConnection.self)
    case .pgsql: return start(PostgreSQLConnection.self)
    }
}
