import AuthBackends

/// The three queries of a plugin file.
public enum SQLQueryKind: Int, Sendable, CaseIterable {
    case auth, superuser, acl
}

/// What a query returned: column names and rows of text values (nil: SQL NULL).
public struct SQLResult: Sendable, Equatable {
    public var columns: [String]
    public var rows: [[String?]]
    public init(columns: [String], rows: [[String?]]) {
        self.columns = columns
        self.rows = rows
    }

    /// The column named `name` (case-insensitive), else the one at `position`.
    public func index(of name: String, orPosition position: Int) -> Int? {
        if let i = columns.firstIndex(where: { $0.lowercased() == name }) { return i }
        return position < columns.count ? position : nil
    }
}

/// A database that runs a plugin's prepared queries (MariaDB or PostgreSQL in the sidecar, a
/// fake in the tests). Values are bound as parameters, in `PreparedQuery.parameters` order;
/// nil is NULL. Errors are `BackendError`s.
public protocol SQLDatabase: Sendable {
    func run(_ kind: SQLQueryKind, parameters: [[UInt8]?]) async throws -> SQLResult

    /// `first`, then `second` on the same connection (one pool round trip) when `next` says so
    /// of the first result. The first query's failure is thrown; the second's is returned.
    func run(_ first: SQLQueryKind, parameters: [[UInt8]?], then second: SQLQueryKind, parameters secondParameters: [[UInt8]?],
             when next: @escaping @Sendable (SQLResult) -> Bool) async throws -> (SQLResult, Result<SQLResult, BackendError>?)
}

extension SQLDatabase {
    /// Two separate calls (a database without connections of its own, e.g. a test fake).
    public func run(_ first: SQLQueryKind, parameters: [[UInt8]?], then second: SQLQueryKind, parameters secondParameters: [[UInt8]?],
                    when next: @escaping @Sendable (SQLResult) -> Bool) async throws -> (SQLResult, Result<SQLResult, BackendError>?) {
        let r = try await run(first, parameters: parameters)
        guard next(r) else { return (r, nil) }
        do {
            return (r, .success(try await run(second, parameters: secondParameters)))
        } catch {
            return (r, .failure(error as? BackendError ?? .query("\(error)")))
        }
    }
}
