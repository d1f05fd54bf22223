import Foundation
@_exported import StrictTOML
import TOMLKit

/// A problem in the plugin's TOML file: StrictTOML's `ConfigError`, shared with the broker.
public typealias SidecarConfigError = ConfigError

/// The plugin's TOML file (`SWIFTLET_PLUGIN_CONFIG`). Its `[sidecar]` table belongs to the
/// broker (command, args, env, enabled, restart policy); every other table is the plugin's.
public struct PluginConfig {
    public let file: String?
    /// The whole document, `[sidecar]` included.
    public let document: TOMLTable
    let lines: LineIndex?

    /// An empty configuration (no file given).
    public init() {
        self.file = nil
        self.document = TOMLTable()
        self.lines = nil
    }

    public init(string: String, file: String? = nil) throws {
        self.file = file
        self.lines = LineIndex(text: string)
        self.document = try StrictTOML.parse(string, file: file)
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
        return ConfigSection(table: t, path: name, file: file, lines: lines)
    }

    /// Like `section(_:)`, but a missing table reads as an empty one.
    public func sectionOrEmpty(_ name: String) throws -> ConfigSection {
        try section(name) ?? ConfigSection(table: TOMLTable(), path: name, file: file, lines: lines)
    }
}

