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
}
