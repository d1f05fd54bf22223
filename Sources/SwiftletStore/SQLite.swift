import SwiftletConfig
import SwiftletRouting
import CSQLite
import Foundation

/// An SQLite error with the library's code and message.
public struct SQLiteError: Error, CustomStringConvertible {
    public var code: Int32
    public var message: String
    public var description: String { "sqlite error \(code): \(message)" }
}

// SQLITE_TRANSIENT tells SQLite to copy bound bytes before the call returns.
private let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The only file that touches SQLite's C API: owns the connection and statement pointers and
/// turns result codes into `SQLiteError`. Not thread-safe: one owner thread at a time.
final class SQLiteDatabase {
    private var db: OpaquePointer?
    private var cache: [String: SQLiteStatement] = [:]
    let path: String

    /// `immutable`: read-only without locks or -wal/-shm files (only for a file no one
    /// writes and that has no -wal file: an inspection must not change the data dir).
    init(path: String, readOnly: Bool = false, immutable: Bool = false) throws {
        self.path = path
        var flags = readOnly || immutable ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var name = path
        if immutable {
            let escaped = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "?#%"))) ?? path
            name = "file:\(escaped)?immutable=1"
            flags |= SQLITE_OPEN_URI
        }
        let rc = sqlite3_open_v2(name, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            db = nil
            throw SQLiteError(code: rc, message: "\(path): \(msg)")
        }
        sqlite3_busy_timeout(db, 5000)
    }

    deinit { close() }

    func close() {
        cache.removeAll()
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    private func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw SQLiteError(code: rc, message: db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed")
        }
    }

    /// Runs one or more statements without results.
    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "error"
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: msg)
        }
    }

    /// A prepared statement, cached by its SQL text.
    func prepare(_ sql: String) throws -> SQLiteStatement {
        if let s = cache[sql] {
            s.reset()
            return s
        }
        var stmt: OpaquePointer?
        try check(sqlite3_prepare_v2(db, sql, -1, &stmt, nil))
        let s = SQLiteStatement(stmt!, db: self)
        cache[sql] = s
        return s
    }

    /// Runs `sql` with `bindings` and calls `row` for each result row.
    func query(_ sql: String, _ bindings: [SQLiteValue] = [], row: (SQLiteRow) throws -> Void) throws {
        let s = try prepare(sql)
        try s.bind(bindings)
        while try s.step() { try row(SQLiteRow(stmt: s.stmt)) }
    }

    func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws {
        let s = try prepare(sql)
        try s.bind(bindings)
        while try s.step() {}
    }

    var changes: Int { Int(sqlite3_changes(db)) }

    fileprivate func stepResult(_ rc: Int32) throws -> Bool {
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        try check(rc)
        return false
    }
}

enum SQLiteValue {
    case null
    case int(Int64)
    case text(String)
    case blob([UInt8])
}

final class SQLiteStatement {
    let stmt: OpaquePointer
    unowned let db: SQLiteDatabase

    init(_ stmt: OpaquePointer, db: SQLiteDatabase) {
        self.stmt = stmt
        self.db = db
    }

    deinit { sqlite3_finalize(stmt) }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    func bind(_ values: [SQLiteValue]) throws {
        for (i, v) in values.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case .int(let n): rc = sqlite3_bind_int64(stmt, idx, n)
            case .text(let s): rc = sqlite3_bind_text(stmt, idx, s, -1, SQLITE_TRANSIENT)
            case .blob(let b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
            }
            if rc != SQLITE_OK { throw SQLiteError(code: rc, message: "bind \(idx)") }
        }
    }

    func step() throws -> Bool { try db.stepResult(sqlite3_step(stmt)) }
}

/// Column accessors for the current row.
struct SQLiteRow {
    let stmt: OpaquePointer

    func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }
    func int(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
    func text(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, i) else { return "" }
        return String(cString: p)
    }
    func blob(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    var columnCount: Int32 { sqlite3_column_count(stmt) }

    /// Column `i` with its stored type (for copying rows between databases).
    func value(_ i: Int32) -> SQLiteValue {
        switch sqlite3_column_type(stmt, i) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .int(int(i))
        case SQLITE_TEXT: return .text(text(i))
        default: return .blob(blob(i))
        }
    }
}
