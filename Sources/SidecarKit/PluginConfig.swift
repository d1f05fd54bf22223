import Foundation
import TOMLKit

/// A problem in the plugin's TOML file, always naming the key (`template.users.alice.password`).
public struct SidecarConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String?
    public var key: String
    public var line: Int?
    public var message: String

    public init(file: String?, key: String, line: Int? = nil, message: String) {
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

/// The plugin's TOML file (`SWIFTLET_PLUGIN_CONFIG`). Its `[sidecar]` table belongs to the
/// broker (command, args, env, enabled, restart policy); every other table is the plugin's.
public struct PluginConfig {
    public let file: String?
    /// The whole document, `[sidecar]` included.
    public let document: TOMLTable

    /// An empty configuration (no file given).
    public init() {
        self.file = nil
        self.document = TOMLTable()
    }

    public init(string: String, file: String? = nil) throws {
        self.file = file
        do {
            self.document = try TOMLTable(string: string)
        } catch let e as TOMLParseError {
            throw SidecarConfigError(file: file, key: "(syntax)", line: e.source.begin.line, message: e.description)
        }
    }

    public static func load(path: String) throws -> PluginConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SidecarConfigError(file: path, key: "(file)", message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SidecarConfigError(file: path, key: "(file)", message: "not UTF-8 text")
        }
        return try PluginConfig(string: text, file: path)
    }

    /// The file named by the environment, or an empty configuration when there is none.
    public static func load(_ environment: SidecarEnvironment) throws -> PluginConfig {
        guard let path = environment.configPath else { return PluginConfig() }
        return try load(path: path)
    }

    /// The names of the plugin's own top-level keys (everything but `sidecar`).
    public var pluginKeys: [String] { document.keys.filter { $0 != "sidecar" }.sorted() }

    /// The plugin's top-level table `name`, or nil when the file has none.
    public func section(_ name: String) throws -> ConfigSection? {
        guard name != "sidecar" else {
            throw SidecarConfigError(file: file, key: name, message: "[sidecar] belongs to the broker, not to the plugin")
        }
        guard let v = document[name] else { return nil }
        guard let t = v.table else {
            throw SidecarConfigError(file: file, key: name, message: "must be a table ([\(name)])")
        }
        return ConfigSection(table: t, path: name, file: file)
    }

    /// Like `section(_:)`, but a missing table reads as an empty one.
    public func sectionOrEmpty(_ name: String) throws -> ConfigSection {
        try section(name) ?? ConfigSection(table: TOMLTable(), path: name, file: file)
    }
}

/// One table of the plugin's configuration with typed getters. Every getter returns nil
/// for a missing key and throws `SidecarConfigError` (naming the full dotted key) for a
/// value of the wrong type or out of range.
public struct ConfigSection {
    public let table: TOMLTable
    /// Dotted path of this table in the file (`template`, `template.users.alice`).
    public let path: String
    public let file: String?

    public init(table: TOMLTable, path: String, file: String?) {
        self.table = table
        self.path = path
        self.file = file
    }

    public var keys: [String] { table.keys.sorted() }

    public func key(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }

    public func error(_ k: String, _ message: String) -> SidecarConfigError {
        SidecarConfigError(file: file, key: key(k), message: message)
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
        return ConfigSection(table: t, path: key(k), file: file)
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
            throw SidecarConfigError(file: file, key: path, message: "\(error)")
        }
    }
}
