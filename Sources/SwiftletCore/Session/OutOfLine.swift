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

/// What only a disconnected session uses: a will waiting for its delay, the will and expiry
/// timers, when it went offline (~130 B inline in every session before).
struct OfflineState {
    var pendingWill: (will: Will, username: String?)?
    var willTask: Scheduled<Void>?
    var expiryTask: Scheduled<Void>?
    var disconnectedAt: NIODeadline?

    var isEmpty: Bool { pendingWill == nil && willTask == nil && expiryTask == nil && disconnectedAt == nil }
}
