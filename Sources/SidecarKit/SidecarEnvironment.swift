import Foundation
import Logging

/// Where a sidecar finds the broker and its configuration (Protocol/SPEC.md section 1).
///
/// Managed sidecars get `SWIFTLET_SOCKET`, `SWIFTLET_SIDECAR_NAME` and `SWIFTLET_PLUGIN_CONFIG`
/// from the broker; external ones may pass `--socket`, `--name` and `--config` instead (flags
/// win over the environment). `SWIFTLET_LOG_LEVEL` / `--log-level` sets the log level.
public struct SidecarEnvironment: Sendable, Equatable {
    public var socketPath: String?
    public var name: String?
    public var configPath: String?
    public var logLevel: Logger.Level
    /// Command-line arguments SidecarKit did not consume (the plugin's own flags).
    public var remainingArguments: [String]

    public init(socketPath: String?, name: String? = nil, configPath: String? = nil,
                logLevel: Logger.Level = .info, remainingArguments: [String] = []) {
        self.socketPath = socketPath
        self.name = name
        self.configPath = configPath
        self.logLevel = logLevel
        self.remainingArguments = remainingArguments
    }

    public static let usage = """
        options (each overrides its environment variable):
          --socket PATH      broker sidecar socket            (SWIFTLET_SOCKET)
          --name NAME        sidecar name, [A-Za-z0-9._-]    (SWIFTLET_SIDECAR_NAME)
          --config PATH      the plugin's TOML file           (SWIFTLET_PLUGIN_CONFIG)
          --log-level LEVEL  trace|debug|info|notice|warning|error|critical (SWIFTLET_LOG_LEVEL)
        """

    /// Reads flags then the environment. Throws `SidecarEnvironmentError` for a flag without
    /// its value or an unknown log level; `--help` throws `.helpRequested`.
    public static func parse(arguments: [String], environment: [String: String]) throws -> SidecarEnvironment {
        var env = SidecarEnvironment(socketPath: environment["SWIFTLET_SOCKET"].nonEmpty,
                                     name: environment["SWIFTLET_SIDECAR_NAME"].nonEmpty,
                                     configPath: environment["SWIFTLET_PLUGIN_CONFIG"].nonEmpty)
        var level = environment["SWIFTLET_LOG_LEVEL"].nonEmpty
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            var flag = arg
            var value: String?
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                flag = String(arg[..<eq])
                value = String(arg[arg.index(after: eq)...])
            }
            let known = ["--socket", "--name", "--config", "--log-level"]
            if flag == "-h" || flag == "--help" { throw SidecarEnvironmentError.helpRequested }
            guard known.contains(flag) else {
                env.remainingArguments.append(arg)
                i += 1
                continue
            }
            if value == nil {
                guard i + 1 < arguments.count else { throw SidecarEnvironmentError.missingValue(flag) }
                value = arguments[i + 1]
                i += 1
            }
            switch flag {
            case "--socket": env.socketPath = value
            case "--name": env.name = value
            case "--config": env.configPath = value
            default: level = value
            }
            i += 1
        }
        if let level {
            guard let l = Logger.Level(rawValue: level.lowercased()) else {
                throw SidecarEnvironmentError.badLogLevel(level)
            }
            env.logLevel = l
        }
        return env
    }

    /// This process's flags (without the program name) and environment. On a bad flag it
    /// prints the problem and the usage to stderr and exits with status 2 (`--help`: 0).
    public static var current: SidecarEnvironment {
        do {
            return try parse(arguments: Array(CommandLine.arguments.dropFirst()),
                             environment: ProcessInfo.processInfo.environment)
        } catch SidecarEnvironmentError.helpRequested {
            FileHandle.standardError.write(Data((usage + "\n").utf8))
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n\(usage)\n".utf8))
            exit(2)
        }
    }
}

public enum SidecarEnvironmentError: Error, Equatable, CustomStringConvertible {
    case missingValue(String)
    case badLogLevel(String)
    case helpRequested

    public var description: String {
        switch self {
        case .missingValue(let f): return "\(f) needs a value"
        case .badLogLevel(let l): return "unknown log level '\(l)' (trace, debug, info, notice, warning, error, critical)"
        case .helpRequested: return "help requested"
        }
    }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? {
        guard let s = self, !s.isEmpty else { return nil }
        return s
    }
}
