import Atomics
import Logging

/// The broker's log level, changeable while it runs (`swiftlet-ctl reload config`). Every
/// logger made through `SwitchedLogHandler` reads it at each log call (one relaxed load).
public final class LogLevelSwitch: Sendable {
    private let raw: ManagedAtomic<Int>

    public init(_ level: Logger.Level) { raw = ManagedAtomic(Self.index(level)) }

    public var level: Logger.Level {
        get { Logger.Level.allCases[raw.load(ordering: .relaxed)] }
        set { raw.store(Self.index(newValue), ordering: .relaxed) }
    }

    private static func index(_ l: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: l) ?? 3 }
}

/// A log handler whose level is the switch's (a level set on one logger copy is ignored:
/// the broker has one level).
public struct SwitchedLogHandler<Inner: LogHandler>: LogHandler {
    public var inner: Inner
    public let levels: LogLevelSwitch

    public init(_ inner: Inner, levels: LogLevelSwitch) {
        self.inner = inner
        self.levels = levels
        self.inner.logLevel = .trace
    }

    public var logLevel: Logger.Level {
        get { levels.level }
        set {}
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        inner.log(level: level, message: message, metadata: metadata, source: source, file: file, function: function, line: line)
    }
}
