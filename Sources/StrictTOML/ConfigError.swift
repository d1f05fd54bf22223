/// A configuration problem, always naming the dotted key and, when known, the file and line:
/// `configuration error in auth_mysql.toml at line 7, key 'auth_mysql.mysql_pool.port': ...`.
/// One type for the broker's swiftlet.toml, its plugin and auth files, and every sidecar's
/// plugin file.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String?
    public var key: String
    public var line: Int?
    public var message: String

    public init(file: String? = nil, key: String, line: Int? = nil, message: String) {
        self.file = file
        self.key = key
        self.line = line
        self.message = message
    }

    public var description: String {
        var s = "configuration error"
        if let file { s += " in \(file)" }
        if let line { s += " at line \(line)" }
        return s + ", key '\(key)': \(message)"
    }
}
