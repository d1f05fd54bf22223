/// A Redis reply, copied out of hiredis (Hiredis.swift frees the C reply at once). Strings
/// are bytes: Redis is binary safe, and so is everything that reads a reply.
public indirect enum RedisValue: Sendable, Equatable {
    case null
    case string([UInt8])
    case integer(Int64)
    case status(String)
    case error(String)
    case array([RedisValue])

    /// The value as text: a bulk string or status as UTF-8 (nil when not UTF-8), an integer
    /// in decimal; nil for nil, arrays and errors.
    public var text: String? {
        switch self {
        case .string(let b): return String(validating: b, as: UTF8.self)
        case .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    public var isNull: Bool { self == .null }
}
