import Logging

public enum SidecarLogging {
    /// A logger writing to stderr (the broker tags managed sidecars' stderr with their name),
    /// at `environment.logLevel` (`SWIFTLET_LOG_LEVEL`), with `sidecar.name` metadata.
    public static func makeLogger(name: String, environment: SidecarEnvironment) -> Logger {
        var logger = Logger(label: "swiftlet.sidecar.\(name)") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = environment.logLevel
        logger[metadataKey: "sidecar.name"] = "\(name)"
        return logger
    }
}
