import SidecarLinkKit
import SwiftletConfig
import Foundation
import TOMLKit

/// A managed sidecar declared in `<plugins_dir>/<name>.toml` (its `[sidecar]` table; the
/// rest of the file is the sidecar's own configuration).
public struct PluginSpec: Sendable, Equatable {
    public var name: String
    public var file: String
    public var command: String
    public var args: [String] = []
    public var env: [String: String] = [:]
    public var enabled = true
    public var restart = RestartPolicy()
    public var teardown = TeardownPlan()
    /// What the process runs as and within (`user`, `group`, limits, `clean_env`).
    public var isolation = SidecarIsolation()
    /// The whole file as read: the sidecar's own settings are in it too, so `reload config`
    /// compares it to tell whether a running sidecar needs a reload.
    public var source = ""

    public static func load(name: String, file: String) throws -> PluginSpec {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "(file)", line: nil, message: "cannot read \(file)")
        }
        return try parse(name: name, file: file, text: text)
    }

    public static func parse(name: String, file: String, text: String) throws -> PluginSpec {
        let root = try StrictTOML.parse(text, file: file)
        let reader = ConfigLoader.Reader(text: text)
        guard let t = try reader.table(root, "sidecar", section: "") else {
            throw ConfigError(key: "sidecar", line: nil, message: "\(file) has no [sidecar] table")
        }
        let s = "sidecar"
        try reader.checkKeys(t, allowed: ["command", "args", "env", "enabled", "restart", "user", "group", "memory_max",
                                          "open_files", "cpu_seconds", "clean_env"], section: s)
        guard let command = try reader.string(t, "command", section: s), !command.isEmpty else {
            throw reader.error("sidecar.command", "is required")
        }
        var spec = PluginSpec(name: name, file: file, command: command)
        spec.source = text
        if let v = try reader.bool(t, "enabled", section: s) { spec.enabled = v }
        if let a = t["args"] {
            guard let arr = a.array else { throw reader.error("sidecar.args", "must be an array of strings") }
            spec.args = try arr.map {
                guard let x = $0.string else { throw reader.error("sidecar.args", "must be an array of strings") }
                return x
            }
        }
        if let e = try reader.table(t, "env", section: s) {
            for (k, v) in e {
                guard let x = v.string else { throw reader.error("sidecar.env.\(k)", "must be a string") }
                spec.env[k] = x
            }
        }
        spec.isolation = try SidecarIsolation.parse(t, reader: reader)
        if let r = try reader.table(t, "restart", section: s) {
            let rs = "sidecar.restart"
            try reader.checkKeys(r, allowed: ["initial_backoff", "max_backoff", "max_restarts", "period", "shutdown_grace"], section: rs)
            if let v = try reader.number(r, "initial_backoff", section: rs, min: 0.01, max: 3600) { spec.restart.initialBackoff = v }
            if let v = try reader.number(r, "max_backoff", section: rs, min: 0.01, max: 86_400) { spec.restart.maxBackoff = v }
            if let v = try reader.int(r, "max_restarts", section: rs, min: 0, max: 1_000_000) { spec.restart.maxRestarts = v }
            if let v = try reader.number(r, "period", section: rs, min: 1, max: 86_400 * 7) { spec.restart.period = v }
            if let v = try reader.number(r, "shutdown_grace", section: rs, min: 0, max: 3600) { spec.teardown = TeardownPlan(grace: v) }
        }
        return spec
    }

    /// Declarations in a folder: `<name>.toml`, name in [A-Za-z0-9._-].
    public static func scan(dir: String) -> [(name: String, file: String)] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.filter { $0.hasSuffix(".toml") }.sorted().map {
            (String($0.dropLast(5)), (dir as NSString).appendingPathComponent($0))
        }
    }
}
