import NIOCore

/// Capped exponential backoff with jitter: `initial`, doubling up to `maximum`, each delay
/// spread by +/- `jitter` (a fraction) so that many sidecars do not reconnect in lockstep.
public struct Backoff: Sendable, Equatable {
    public var initial: TimeAmount
    public var maximum: TimeAmount
    public var jitter: Double
    private var attempt = 0

    public init(initial: TimeAmount = .milliseconds(100), maximum: TimeAmount = .seconds(5), jitter: Double = 0.2) {
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The delay before the next attempt; `unit` in [0, 1) picks the jitter (random by default).
    public mutating func next(unit: Double = Double.random(in: 0..<1)) -> TimeAmount {
        let base = min(Double(maximum.nanoseconds), Double(initial.nanoseconds) * Double(1 << min(attempt, 30)))
        attempt += 1
        let spread = base * jitter * (2 * unit - 1)
        return .nanoseconds(Int64(max(0, min(Double(maximum.nanoseconds), base + spread))))
    }

    /// After a connection that got as far as REGISTERED.
    public mutating func reset() { attempt = 0 }
}
