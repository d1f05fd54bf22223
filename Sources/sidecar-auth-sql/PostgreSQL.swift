import AuthBackends
import AuthSQL
import CPQ
import Foundation

// The only file that touches libpq: every PGconn, PGresult and PGcancel pointer lives and
// dies here, and every C error becomes a BackendError.

/// One PostgreSQL connection with the plugin's prepared statements. Used by one pool thread
/// at a time (ConnectionPool), never concurrently.
final class PostgreSQLConnection: @unchecked Sendable {
    private let conn: OpaquePointer
    private var prepared: Set<SQLQueryKind> = []
    /// The client-side deadline: the server cancels at `query_timeout` (statement_timeout);
    /// when it does not answer at all this much later, the query is cancelled from here.
    private let deadline: Double
    private(set) var broken = false

    init(_ p: SQLPoolSettings, queryTimeout: Double) throws {
        deadline = queryTimeout + 2
        var params: [(String, String)] = [
            ("host", p.host), ("port", "\(p.port)"), ("user", p.user), ("password", p.password),
            ("dbname", p.database), ("client_encoding", p.encoding.lowercased() == "utf8" ? "UTF8" : p.encoding),
            ("connect_timeout", "\(Int(max(2, min(queryTimeout.rounded(.up), 5))))"),
            ("options", "-c statement_timeout=\(Int(queryTimeout * 1000))"),
            ("application_name", "swiftlet-auth-sql"),
            ("sslmode", p.ssl ? (p.sslCAFile != nil ? "verify-full" : "require") : "disable"),
        ]
        if let v = p.sslCAFile { params.append(("sslrootcert", v)) }
        if let v = p.sslCertFile { params.append(("sslcert", v)) }
        if let v = p.sslKeyFile { params.append(("sslkey", v)) }
        let keys = params.map { strdup($0.0) }
        let values = params.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        var k: [UnsafePointer<CChar>?] = keys.map { UnsafePointer($0) } + [nil]
        var v: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) } + [nil]
        guard let c = PQconnectdbParams(&k, &v, 0) else { throw BackendError.unavailable("out of memory") }
        guard PQstatus(c) == CONNECTION_OK else {
            let e = Self.message(PQerrorMessage(c))
            PQfinish(c)
            throw BackendError.unavailable(e)
        }
        conn = c
    }

    private static func message(_ p: UnsafePointer<CChar>?) -> String {
        p.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown error"
    }

    func close() { PQfinish(conn) }

    func ping() throws {
        _ = try execute { PQsendQuery(conn, "SELECT 1") }
    }

    /// The statement's name on this connection.
    private func name(_ kind: SQLQueryKind) -> String { "swiftlet_\(kind)" }

    private func prepare(_ kind: SQLQueryKind, _ sql: String, count: Int) throws {
        guard !prepared.contains(kind) else { return }
        _ = try execute { PQsendPrepare(conn, name(kind), sql, Int32(count), nil) }
        prepared.insert(kind)
    }

    /// Sends with `send`, waits for the answer up to the deadline (cancelling after it), and
    /// returns the last result's rows, or throws its error.
    private func execute(maxRows: Int = 1_000_000, maxFieldBytes: Int = 1 << 24,
                         _ send: () -> Int32) throws -> SQLResult {
        guard !broken else { throw BackendError.connectionLost("broken") }
        guard send() == 1 else { return try lost() }
        let fd = PQsocket(conn)
        let end = Date().addingTimeInterval(deadline)
        while PQisBusy(conn) == 1 {
            let left = end.timeIntervalSinceNow
            if left <= 0 {
                cancel()
                broken = true
                throw BackendError.timeout("no answer in \(Int(deadline)) s")
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(min(left * 1000, 1000)) + 1)
            if r < 0 && errno != EINTR { return try lost() }
            if PQconsumeInput(conn) == 0 { return try lost() }
        }
        var outcome: Result<SQLResult, BackendError> = .success(SQLResult(columns: [], rows: []))
        while let res = PQgetResult(conn) {
            defer { PQclear(res) }
            guard case .success = outcome else { continue }   // drain the rest
            switch PQresultStatus(res) {
            case PGRES_TUPLES_OK:
                outcome = Self.rows(res, maxRows: maxRows, maxFieldBytes: maxFieldBytes)
            case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                break
            default:
                let state = PQresultErrorField(res, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
                let text = Self.message(PQresultErrorMessage(res))
                if state == "57014" {
                    outcome = .failure(.timeout(text))
                } else if PQstatus(conn) != CONNECTION_OK || state.hasPrefix("08") || state.hasPrefix("57P") {
                    broken = true
                    outcome = .failure(.connectionLost(text))
                } else {
                    outcome = .failure(.query("\(text) (SQLSTATE \(state))"))
                }
            }
        }
        if PQstatus(conn) != CONNECTION_OK { broken = true }
        return try outcome.get()
    }

    private func lost() throws -> SQLResult {
        broken = true
        throw BackendError.connectionLost(Self.message(PQerrorMessage(conn)))
    }

    private func cancel() {
        guard let c = PQgetCancel(conn) else { return }
        var buf = [CChar](repeating: 0, count: 256)
        _ = PQcancel(c, &buf, Int32(buf.count))
        PQfreeCancel(c)
    }

    private static func rows(_ res: OpaquePointer, maxRows: Int, maxFieldBytes: Int) -> Result<SQLResult, BackendError> {
        let n = Int(PQntuples(res))
        guard n <= maxRows else { return .failure(.resultTooLarge("\(n) rows, at most \(maxRows)")) }
        let cols = Int(PQnfields(res))
        let names = (0..<cols).map { PQfname(res, Int32($0)).map { String(cString: $0) } ?? "" }
        var rows: [[String?]] = []
        for r in 0..<Int32(n) {
            var row: [String?] = []
            for c in 0..<Int32(cols) {
                if PQgetisnull(res, r, c) == 1 { row.append(nil); continue }
                let len = Int(PQgetlength(res, r, c))
                guard len <= maxFieldBytes else { return .failure(.resultTooLarge("a \(len)-byte value, at most \(maxFieldBytes)")) }
                let bytes = UnsafeRawBufferPointer(start: PQgetvalue(res, r, c), count: len)
                row.append(String(decoding: bytes, as: UTF8.self))
            }
            rows.append(row)
        }
        return .success(SQLResult(columns: names, rows: rows))
    }

    /// Runs a prepared query with every value bound as a text parameter (nil: NULL). A value
    /// containing NUL, which no PostgreSQL text can hold (so it equals nothing stored), is
    /// bound as NULL.
    func run(_ kind: SQLQueryKind, _ sql: String, _ values: [[UInt8]?], maxRows: Int, maxFieldBytes: Int) throws -> SQLResult {
        try prepare(kind, sql, count: values.count)
        let copies: [UnsafeMutablePointer<CChar>?] = values.map { v in
            guard let v, !v.contains(0) else { return nil }
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: v.count + 1)
            v.withUnsafeBytes { b in
                if let base = b.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: v.count) }
            }
            p[v.count] = 0
            return p
        }
        defer { copies.forEach { $0?.deallocate() } }
        var params: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let stmt = name(kind)
        return try execute(maxRows: maxRows, maxFieldBytes: maxFieldBytes) {
            params.withUnsafeMutableBufferPointer { p in
                PQsendQueryPrepared(conn, stmt, Int32(values.count), p.baseAddress, nil, nil, 0)
            }
        }
    }
}
