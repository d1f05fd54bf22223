import AuthBackends

/// One of the plugin's commands (`authcmd = ["HMGET", "mqtt_user:%u", "password", "salt"]`):
/// each argument is a template, and a rendered argument stays one argument whatever the
/// values hold (spaces, CR/LF, `*3\r\n`, any byte): Hiredis.swift sends them with
/// redisCommandArgv, never as a command line.
public struct RedisCommand: Sendable, Equatable, CustomStringConvertible {
    public let arguments: [PlaceholderTemplate]
    public let source: [String]

    /// The placeholders a Redis command may use: %u username, %c client id, %a IP address,
    /// %C certificate common name, %d certificate subject. %P (the password) is refused: it
    /// would travel to Redis and into its logs (MONITOR, SLOWLOG).
    public static let allowed: Set<Placeholder> = [.username, .clientId, .ipAddress, .certCommonName, .certSubject]

    public init(_ words: [String]) throws(ConfigProblem) {
        guard let first = words.first, !first.isEmpty else {
            throw ConfigProblem("must be a non-empty array of strings, e.g. [\"HGET\", \"mqtt_user:%u\", \"password\"]")
        }
        if first.contains("%") { throw ConfigProblem("the command name (\(first)) cannot hold a placeholder") }
        let templates = words.map(PlaceholderTemplate.init)
        for t in templates {
            for p in t.placeholders where !Self.allowed.contains(p) {
                throw ConfigProblem("%\(p.rawValue) is not available in Redis commands (use %u, %c, %a, %C, %d)")
            }
        }
        arguments = templates
        source = words
    }

    /// The placeholders used, so that a request missing one of them (an anonymous client
    /// and `%u`) is not looked up under an empty name.
    public var placeholders: Set<Placeholder> { Set(arguments.flatMap(\.placeholders)) }

    /// The arguments with the values substituted, as bytes; nil when a placeholder the
    /// command uses has no value (no username, no certificate).
    public func render(_ values: PlaceholderValues) -> [[UInt8]]? {
        for p in placeholders where values[p] == nil { return nil }
        return arguments.map { $0.render(values) }
    }

    public var description: String { source.joined(separator: " ") }
}
