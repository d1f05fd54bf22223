import AuthBackends
import AuthSQL
import CMariaDB
import Foundation

// The only file that touches libmariadb: every MYSQL, MYSQL_STMT, MYSQL_RES and MYSQL_BIND
// pointer lives and dies here, and every C error becomes a BackendError.

/// One MariaDB/MySQL connection with the plugin's prepared statements. Used by one pool
/// thread at a time (ConnectionPool), never concurrently.
final class MariaDBConnection: @unchecked Sendable {
    private let mysql: UnsafeMutablePointer<MYSQL>
    private var statements: [SQLQueryKind: UnsafeMutablePointer<MYSQL_STMT>] = [:]
    private let readTimeout: Double
    private(set) var broken = false

    /// Once per process, before any thread connects (mysql_init is not thread-safe the first time).
    static let libraryReady: Bool = { mysql_server_init(0, nil, nil) == 0 }()

    init(_ p: SQLPoolSettings, queryTimeout: Double) throws {
        guard Self.libraryReady, let m = mysql_init(nil) else { throw BackendError.unavailable("mysql_init failed") }
        mysql = m
        readTimeout = queryTimeout.rounded(.up) + 2
        var connectTimeout = UInt32(max(1, min(queryTimeout.rounded(.up), 5)))
        var ioTimeout = UInt32(readTimeout)
        mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connectTimeout)
        mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &ioTimeout)
        mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &ioTimeout)
        let charset = p.encoding.lowercased() == "utf8" ? "utf8mb4" : p.encoding
        mysql_options(m, MYSQL_SET_CHARSET_NAME, charset)
        if p.ssl {
            var on: CChar = 1
            mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on)
            if p.sslCAFile != nil { mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on) }
            mysql_ssl_set(m, p.sslKeyFile, p.sslCertFile, p.sslCAFile, nil, nil)
        }
        let host = p.isUnixSocket ? "localhost" : p.host
        let socket = p.isUnixSocket ? p.host : nil
        guard mysql_real_connect(m, host, p.user, p.password, p.database, UInt32(p.port), socket, 0) != nil else {
            let e = Self.error(m)
            mysql_close(m)
            throw BackendError.unavailable(e)
        }
        // Server-side cancellation of a slow query (MariaDB 10.1+); the client read timeout
        // above is the backstop for a server that does not answer at all.
        let set = String(format: "SET SESSION max_statement_time = %.3f", queryTimeout)
        if mysql_query(m, set) != 0 {
            let e = Self.error(m)
            mysql_close(m)
            throw BackendError.unavailable("\(set): \(e)")
        }
    }

    private static func error(_ m: UnsafeMutablePointer<MYSQL>) -> String {
        "\(String(cString: mysql_error(m))) (\(mysql_errno(m)))"
    }

    func close() {
        for s in statements.values { mysql_stmt_close(s) }
        statements = [:]
        mysql_close(mysql)
    }

    func ping() throws {
        guard !broken else { throw BackendError.connectionLost("broken") }
        if mysql_ping(mysql) != 0 {
            broken = true
            throw BackendError.connectionLost(Self.error(mysql))
        }
    }

    /// A C error code as a BackendError; marks the connection broken when it is.
    private func failure(_ code: UInt32, _ message: String, started: Date) -> BackendError {
        switch Int32(code) {
        case ER_STATEMENT_TIMEOUT, ER_QUERY_INTERRUPTED:
            // The protocol state after an interrupted statement is not to be trusted (the next
            // query on this connection was seen to hang): a fresh connection replaces it.
            broken = true
            return .timeout(message)
        case CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_LOST_EXTENDED,
             CR_COMMANDS_OUT_OF_SYNC, CR_UNKNOWN_ERROR:
            broken = true
            if Date().timeIntervalSince(started) >= readTimeout - 0.5 { return .timeout("no answer in \(Int(readTimeout)) s") }
            return .connectionLost(message)
        default:
            return .query(message)
        }
    }

    private func statement(_ kind: SQLQueryKind, _ sql: String) throws -> UnsafeMutablePointer<MYSQL_STMT> {
        if let s = statements[kind] { return s }
        guard let s = mysql_stmt_init(mysql) else { throw BackendError.connectionLost("mysql_stmt_init failed") }
        let bytes = Array(sql.utf8)
        if mysql_stmt_prepare(s, sql, UInt(bytes.count)) != 0 {
            let e = failure(mysql_stmt_errno(s), String(cString: mysql_stmt_error(s)), started: Date())
            mysql_stmt_close(s)
            throw e
        }
        var update: CChar = 1
        mysql_stmt_attr_set(s, STMT_ATTR_UPDATE_MAX_LENGTH, &update)
        statements[kind] = s
        return s
    }

    /// Runs a prepared query with every value bound as a string parameter (nil: NULL).
    func run(_ kind: SQLQueryKind, _ sql: String, _ values: [[UInt8]?], maxRows: Int, maxFieldBytes: Int) throws -> SQLResult {
        guard !broken else { throw BackendError.connectionLost("broken") }
        let started = Date()
        let stmt = try statement(kind, sql)
        do {
            return try execute(stmt, values, started: started, maxRows: maxRows, maxFieldBytes: maxFieldBytes)
        } catch {
            if !broken {
                // A failed statement is prepared again next time.
                mysql_stmt_close(stmt)
                statements[kind] = nil
            }
            throw error
        }
    }

    private func execute(_ stmt: UnsafeMutablePointer<MYSQL_STMT>, _ values: [[UInt8]?], started: Date,
                         maxRows: Int, maxFieldBytes: Int) throws -> SQLResult {
        func fail() -> BackendError { failure(mysql_stmt_errno(stmt), String(cString: mysql_stmt_error(stmt)), started: started) }
        guard Int(mysql_stmt_param_count(stmt)) == values.count else {
            throw BackendError.query("the statement has \(mysql_stmt_param_count(stmt)) parameters, \(values.count) given")
        }

        // Parameters: copies that outlive execute.
        let params = StringBinds(sizes: values.map { max($0?.count ?? 0, 1) })
        defer { params.deallocate() }
        for (i, v) in values.enumerated() {
            let bytes = v ?? []
            bytes.withUnsafeBytes { if let base = $0.baseAddress { params.buffers[i].copyMemory(from: base, byteCount: bytes.count) } }
            params.binds[i].buffer_length = UInt(bytes.count)
            params.lengths[i] = UInt(bytes.count)
            params.nulls[i] = v == nil ? 1 : 0
        }
        if !values.isEmpty && mysql_stmt_bind_param(stmt, params.binds) != 0 { throw fail() }
        if mysql_stmt_execute(stmt) != 0 { throw fail() }
        defer { mysql_stmt_free_result(stmt) }

        guard let meta = mysql_stmt_result_metadata(stmt) else { return SQLResult(columns: [], rows: []) }
        defer { mysql_free_result(meta) }
        if mysql_stmt_store_result(stmt) != 0 { throw fail() }
        let rowCount = Int(mysql_stmt_num_rows(stmt))
        guard rowCount <= maxRows else { throw BackendError.resultTooLarge("\(rowCount) rows, at most \(maxRows)") }
        let cols = Int(mysql_num_fields(meta))
        guard let fields = mysql_fetch_fields(meta) else { return SQLResult(columns: [], rows: []) }
        var names: [String] = []
        var sizes: [Int] = []
        for i in 0..<cols {
            names.append(fields[i].name.map { String(cString: $0) } ?? "")
            let size = Int(fields[i].max_length)
            guard size <= maxFieldBytes else { throw BackendError.resultTooLarge("a \(size)-byte value, at most \(maxFieldBytes)") }
            sizes.append(size)
        }
        let out = StringBinds(sizes: sizes.map { $0 + 1 })
        defer { out.deallocate() }
        if cols > 0 && mysql_stmt_bind_result(stmt, out.binds) != 0 { throw fail() }
        var rows: [[String?]] = []
        while true {
            let r = mysql_stmt_fetch(stmt)
            if r == MYSQL_NO_DATA { break }
            if r == 1 { throw fail() }
            guard r == 0 else { throw BackendError.resultTooLarge("a value longer than its column's maximum") }
            var row: [String?] = []
            for i in 0..<cols {
                if out.nulls[i] != 0 { row.append(nil); continue }
                let len = min(Int(out.lengths[i]), sizes[i])
                let bytes = UnsafeRawBufferPointer(start: out.buffers[i], count: len)
                row.append(String(decoding: bytes, as: UTF8.self))
            }
            rows.append(row)
        }
        return SQLResult(columns: names, rows: rows)
    }
}

/// MYSQL_BINDs of type string, each with its buffer, length and NULL flag, for parameters or
/// result columns; freed with `deallocate()`.
private struct StringBinds {
    let binds: UnsafeMutablePointer<MYSQL_BIND>
    let lengths: UnsafeMutablePointer<UInt>
    let nulls: UnsafeMutablePointer<CChar>
    let buffers: [UnsafeMutableRawPointer]

    init(sizes: [Int]) {
        let n = max(sizes.count, 1)
        binds = .allocate(capacity: n)
        lengths = .allocate(capacity: n)
        nulls = .allocate(capacity: n)
        buffers = sizes.map { UnsafeMutableRawPointer.allocate(byteCount: $0, alignment: 1) }
        for (i, size) in sizes.enumerated() {
            var b = MYSQL_BIND()
            b.buffer_type = MYSQL_TYPE_STRING
            b.buffer = buffers[i]
            b.buffer_length = UInt(size)
            b.length = lengths + i
            b.is_null = nulls + i
            lengths[i] = 0
            nulls[i] = 0
            binds[i] = b
        }
    }

    func deallocate() {
        binds.deallocate()
        lengths.deallocate()
        nulls.deallocate()
        for b in buffers { b.deallocate() }
    }
}
