import SwiftletRouting
import SwiftletConfig
import Foundation
import Logging

/// Opening the store file: creates it, checks it, and when it is damaged (not a database,
/// failing integrity check, truncated) or from a newer schema, moves it aside and salvages
/// what can still be read into a fresh file. Never refuses to start silently.
public enum StoreFile {
    public struct Report: CustomStringConvertible {
        public var path: String
        public var ok: Bool
        public var problems: [String] = []
        public var counts: [String: Int] = [:]
        public var version: Int64 = 0
        public var description: String {
            var s = "store \(path): \(ok ? "OK" : "DAMAGED") (schema version \(version))\n"
            for p in problems { s += "  problem: \(p)\n" }
            for (t, n) in counts.sorted(by: { $0.key < $1.key }) { s += "  \(t): \(n) rows\n" }
            return s
        }
    }

    static let tables = ["retained", "sessions", "subscriptions", "messages", "session_messages", "awaiting_rel", "meta"]

    /// Inspects a store without changing it (`swiftlet --check-store`).
    public static func check(path: String) -> Report {
        var report = Report(path: path, ok: true)
        guard FileManager.default.fileExists(atPath: path) else {
            report.problems.append("no store file (a new one is created at start)")
            return report
        }
        do {
            let hasWAL = FileManager.default.fileExists(atPath: path + "-wal")
            let db = try SQLiteDatabase(path: path, readOnly: true, immutable: !hasWAL)
            defer { db.close() }
            try db.query("PRAGMA user_version") { report.version = $0.int(0) }
            if report.version > StoreSchema.version {
                report.ok = false
                report.problems.append("written by a newer Swiftlet (schema \(report.version) > \(StoreSchema.version))")
            }
            var results: [String] = []
            try db.query("PRAGMA quick_check") { results.append($0.text(0)) }
            if results != ["ok"] {
                report.ok = false
                report.problems += results.prefix(10)
            }
            for t in tables {
                do {
                    try db.query("SELECT COUNT(*) FROM \(t)") { report.counts[t] = Int($0.int(0)) }
                } catch {
                    report.ok = false
                    report.problems.append("\(t): \(error)")
                }
            }
        } catch {
            report.ok = false
            report.problems.append("\(error)")
        }
        return report
    }

    static func open(path: String, logger: Logger) throws -> SQLiteDatabase {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        if FileManager.default.fileExists(atPath: path) {
            let report = check(path: path)
            if !report.ok {
                let aside = "\(path).damaged-\(Int(Date().timeIntervalSince1970))"
                logger.error("store is damaged; moving it aside and salvaging what can be read",
                             metadata: ["store.path": "\(path)", "store.moved_to": "\(aside)",
                                        "store.problems": "\(report.problems.joined(separator: "; "))"])
                for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                    try FileManager.default.moveItem(atPath: path + suffix, toPath: aside + suffix)
                }
                let db = try create(path: path)
                if report.version <= StoreSchema.version {
                    salvage(from: aside, into: db, logger: logger)
                } else {
                    logger.error("store was written by a newer version; starting with an empty store", metadata: ["store.moved_to": "\(aside)"])
                }
                return db
            }
        }
        return try create(path: path)
    }

    private static func create(path: String) throws -> SQLiteDatabase {
        let db = try SQLiteDatabase(path: path)
        try db.exec("PRAGMA journal_mode = WAL")
        try db.exec("PRAGMA synchronous = FULL")
        try db.exec(StoreSchema.ddl)
        try db.exec("PRAGMA user_version = \(StoreSchema.version)")
        return db
    }

    /// Copies readable rows of every table from a damaged file, row by row, through its own
    /// read-only connection with `writable_schema` on (which skips the file-size check a
    /// truncated file fails), so every row SQLite can still read is kept.
    private static func salvage(from damaged: String, into db: SQLiteDatabase, logger: Logger) {
        let old: SQLiteDatabase
        do {
            old = try SQLiteDatabase(path: damaged, readOnly: true)
            try old.exec("PRAGMA writable_schema = ON")
        } catch {
            logger.error("nothing could be salvaged from the damaged store", metadata: ["error": "\(error)"])
            return
        }
        defer { old.close() }
        try? db.exec("BEGIN")
        for t in tables {
            var rowids: [Int64] = []
            var scanError: Error?
            do {
                try old.query("SELECT rowid FROM \(t)") { rowids.append($0.int(0)) }
            } catch {
                scanError = error
            }
            var saved = 0
            for id in rowids {
                var values: [SQLiteValue] = []
                guard (try? old.query("SELECT * FROM \(t) WHERE rowid = ?", [.int(id)], row: { r in
                    values = (0..<r.columnCount).map { r.value($0) }
                })) != nil, !values.isEmpty else { continue }
                let marks = Array(repeating: "?", count: values.count).joined(separator: ", ")
                if (try? db.run("INSERT OR IGNORE INTO main.\(t) VALUES (\(marks))", values)) != nil { saved += 1 }
            }
            if let scanError {
                logger.warning("table partly salvaged", metadata: ["store.table": "\(t)", "store.rows": "\(saved)",
                                                                   "error": "\(scanError)"])
            } else {
                logger.info("salvaged table", metadata: ["store.table": "\(t)", "store.rows": "\(saved)"])
            }
        }
        try? db.exec("COMMIT")
    }
}

/// `swiftlet --check-store`: inspects the configured store without starting the broker.
public enum StoreInspector {
    public static func check(_ config: BrokerConfig) -> (ok: Bool, report: String) {
        let r = StoreFile.check(path: config.persistence.storePath)
        return (r.ok, r.description)
    }
}
