import TOMLKit

/// One table of a configuration file with typed getters: the one strict TOML reader of the
/// broker (swiftlet.toml, plugin declarations, built-in users and ACL) and of every sidecar.
/// Every getter returns nil for a missing key and throws `ConfigError` (naming the full dotted
/// key, and the line when the text is known) for a value of the wrong type or out of range.
/// Callers refuse unknown keys with `checkKeys`: a typo must not fall back to a default.
public struct ConfigSection {
    public let table: TOMLTable
    /// Dotted path of this table in the file (`template`, `template.users.alice`).
    public let path: String
    public let file: String?
    /// The file's lines, to name the line of a bad key.
    public let lines: LineIndex?

    public init(table: TOMLTable, path: String, file: String?, lines: LineIndex? = nil) {
        self.table = table
        self.path = path
        self.file = file
        self.lines = lines
    }

    public var keys: [String] { table.keys.sorted() }

    public func key(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }

    public func error(_ k: String, _ message: String) -> ConfigError {
        ConfigError(file: file, key: key(k), line: lines?.line(of: key(k)), message: message)
    }

    public func string(_ k: String) throws -> String? {
        guard let v = table[k] else { return nil }
        guard let s = v.string else { throw error(k, "must be a string") }
        return s
    }

    public func bool(_ k: String) throws -> Bool? {
        guard let v = table[k] else { return nil }
        guard let b = v.bool else { throw error(k, "must be true or false") }
        return b
    }

    public func int(_ k: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let v = table[k] else { return nil }
        guard let i = v.int else { throw error(k, "must be an integer") }
        if let range, !range.contains(i) {
            throw error(k, "must be between \(range.lowerBound) and \(range.upperBound), not \(i)")
        }
        return i
    }

    /// A number; integers are accepted (`timeout = 5` and `timeout = 5.0` are the same).
    public func double(_ k: String, range: ClosedRange<Double>? = nil) throws -> Double? {
        guard let v = table[k] else { return nil }
        guard let d = v.double ?? v.int.map(Double.init) else { throw error(k, "must be a number") }
        if let range, !range.contains(d) {
            throw error(k, "must be between \(range.lowerBound) and \(range.upperBound), not \(d)")
        }
        return d
    }

    public func strings(_ k: String) throws -> [String]? {
        guard let v = table[k] else { return nil }
        guard let a = v.array else { throw error(k, "must be an array of strings") }
        return try a.enumerated().map { i, x in
            guard let s = x.string else { throw error("\(k)[\(i)]", "must be a string") }
            return s
        }
    }

    /// One of `choices` (`acl_nomatch = "deny"`).
    public func choice(_ k: String, _ choices: [String]) throws -> String? {
        guard let s = try string(k) else { return nil }
        guard choices.contains(s) else {
            throw error(k, "must be one of \(choices.map { "\"\($0)\"" }.joined(separator: ", ")), not \"\(s)\"")
        }
        return s
    }

    public func section(_ k: String) throws -> ConfigSection? {
        guard let v = table[k] else { return nil }
        guard let t = v.table else { throw error(k, "must be a table") }
        return ConfigSection(table: t, path: key(k), file: file, lines: lines)
    }

    /// Every sub-table of this one, by key (e.g. `[template.users.<name>]`), sorted by key.
    public func sections() throws -> [(name: String, section: ConfigSection)] {
        try keys.compactMap { k in
            guard table[k]?.table != nil else { return nil }
            return (k, try section(k)!)
        }
    }

    public func require<T>(_ k: String, _ get: (String) throws -> T?) throws -> T {
        guard let v = try get(k) else { throw error(k, "is required") }
        return v
    }

    /// Refuses keys outside `allowed`: a typo must not silently fall back to a default.
    public func checkKeys(allowed: Set<String>) throws {
        for k in keys where !allowed.contains(k) {
            throw error(k, "unknown key (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// Decodes the whole table with TOMLKit's `TOMLDecoder`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try TOMLDecoder().decode(type, from: table)
        } catch {
            throw ConfigError(file: file, key: path, line: lines?.line(of: path), message: "\(error)")
        }
    }
}
