import MQTTCodec
import NIOCore

/// A value kept out of line: an object that holds a rarely set field, so that the class that
/// owns it carries one pointer (nil while unset) instead of the field's inline bytes. Used for
/// the state of every connection or session that only some of them need (a will, the timers of
/// a disconnected session): docs/decisions/0007-connection-memory-floor.md.
final class OutOfLine<Value> {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// A value `OutOfLine` holds: empty ones are not kept.
protocol OutOfLineValue {
    init()
    var isEmpty: Bool { get }
}

extension Optional {
    /// Changes the value out of line in place, allocating the box only for a value that is not
    /// empty and releasing it once the value is empty again.
    mutating func update<V: OutOfLineValue>(_ change: (inout V) -> Void) where Wrapped == OutOfLine<V> {
        if let box = self {
            change(&box.value)
            if box.value.isEmpty { self = nil }
        } else {
            var value = V()
            change(&value)
            if !value.isEmpty { self = OutOfLine(value) }
        }
    }
}

/// What only a disconnected session uses: a will waiting for its delay, the will and expiry
/// timers, when it went offline (~130 B inline in every session before).
struct OfflineState: OutOfLineValue {
    var pendingWill: (will: Will, username: String?)?
    var willTask: Scheduled<Void>?
    var expiryTask: Scheduled<Void>?
    var disconnectedAt: NIODeadline?

    var isEmpty: Bool { pendingWill == nil && willTask == nil && expiryTask == nil && disconnectedAt == nil }
}
