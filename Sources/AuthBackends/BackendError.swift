/// What a database call can fail with. Every case answers `error` to the broker (its
/// fallback decides, nothing is cached); `connectionLost` also drops the connection so the
/// pool reconnects it.
public enum BackendError: Error, Equatable, CustomStringConvertible {
    /// No connection to the database (down, not reachable yet, or shutting down).
    case unavailable(String)
    /// Every connection busy and the queue full, or no connection freed in time.
    case overloaded(String)
    /// The connection broke: the pool closes it and reconnects.
    case connectionLost(String)
    /// The query was cancelled after `query_timeout`.
    case timeout(String)
    /// The database refused the query (syntax, permissions, ...).
    case query(String)
    /// More rows or bytes than the configured bound.
    case resultTooLarge(String)

    public var description: String {
        switch self {
        case .unavailable(let s): return "database unavailable: \(s)"
        case .overloaded(let s): return "overloaded: \(s)"
        case .connectionLost(let s): return "connection lost: \(s)"
        case .timeout(let s): return "query timed out: \(s)"
        case .query(let s): return "query failed: \(s)"
        case .resultTooLarge(let s): return "result too large: \(s)"
        }
    }
}
