import NIOConcurrencyHelpers
import NIOCore

/// The answer to one `swiftlet-ctl` command.
public struct ControlReply: Sendable, Equatable {
    /// 0 ok, 1 usage error / unknown command, 2 failed.
    public var status: UInt8
    /// What a person reads (tables, messages).
    public var text: String
    /// JSON text for `--json`, or "" when none.
    public var json: String

    public init(status: UInt8 = 0, text: String, json: String = "") {
        self.status = status
        self.text = text
        self.json = json
    }

    public static let ok: UInt8 = 0
    public static let usageError: UInt8 = 1
    public static let failed: UInt8 = 2
}

/// The commands `swiftlet-ctl` can run: the broker's own and those sidecars register
/// (emqttd_ctl:register_cmd). A command belongs to one owner; another owner cannot take it
/// until the first unregisters.
public final class ControlRegistry: @unchecked Sendable {
    public typealias Handler = @Sendable (_ args: [String], _ loop: EventLoop) -> EventLoopFuture<ControlReply>

    private struct Entry {
        var usage: String
        var owner: String
        var handler: Handler
    }

    private let lock = NIOLock()
    private var entries: [String: Entry] = [:]

    public init() {}

    /// false when another owner already has the command
    @discardableResult
    public func register(_ command: String, usage: String, owner: String, handler: @escaping Handler) -> Bool {
        lock.withLock {
            if let e = entries[command], e.owner != owner { return false }
            entries[command] = Entry(usage: usage, owner: owner, handler: handler)
            return true
        }
    }

    public func unregister(owner: String) {
        lock.withLock { entries = entries.filter { $0.value.owner != owner } }
    }

    public func unregister(command: String, owner: String) {
        lock.withLock {
            if entries[command]?.owner == owner { entries[command] = nil }
        }
    }

    /// Every command, sorted by name.
    public var commands: [(command: String, usage: String, owner: String)] {
        lock.withLock {
            entries.map { (command: $0.key, usage: $0.value.usage, owner: $0.value.owner) }.sorted { $0.command < $1.command }
        }
    }

    /// Runs `command`; an unknown command is a usage error, a failed future a failure.
    /// The handler runs outside the registry's lock.
    public func dispatch(_ command: String, args: [String], on loop: EventLoop) -> EventLoopFuture<ControlReply> {
        guard let handler = lock.withLock({ entries[command]?.handler }) else {
            return loop.makeSucceededFuture(ControlReply(status: ControlReply.usageError,
                                                         text: "unknown command: \(command) (try: swiftlet-ctl help)"))
        }
        return handler(args, loop).hop(to: loop).recover { error in
            ControlReply(status: ControlReply.failed, text: "\(command) failed: \(error)")
        }
    }
}
