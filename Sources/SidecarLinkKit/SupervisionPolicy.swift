import Foundation

/// How a managed sidecar is restarted: capped exponential backoff, and at most `maxRestarts`
/// restarts within `period` seconds; one more leaves it failed (swift-subprocess and
/// Erlang/OTP supervisors model restarts the same way, as data).
public struct RestartPolicy: Sendable, Equatable {
    public var initialBackoff = 0.5
    public var maxBackoff = 30.0
    /// Restarts allowed within `period` seconds; one more leaves the sidecar failed.
    public var maxRestarts = 10
    public var period = 60.0

    public init() {}

    /// Delay before restart number `attempt` (0-based): capped exponential.
    public func backoff(attempt: Int) -> Double {
        min(maxBackoff, initialBackoff * pow(2, Double(min(attempt, 30))))
    }

    /// A run longer than this counts as healthy: the next backoff starts again at `initialBackoff`.
    public var healthyRun: Double { max(10, maxBackoff) }
}

/// How a managed sidecar is stopped (swift-subprocess's `TeardownStep`s): signals in order,
/// each followed by a wait for the process to exit; the last step is always SIGKILL.
public struct TeardownPlan: Sendable, Equatable {
    public enum Signal: Sendable, Equatable, CustomStringConvertible {
        case terminate, kill

        public var number: Int32 { self == .terminate ? SIGTERM : SIGKILL }
        public var description: String { self == .terminate ? "SIGTERM" : "SIGKILL" }
    }

    public struct Step: Sendable, Equatable {
        public var signal: Signal
        /// Seconds to wait for the exit before the next step.
        public var wait: Double
    }

    public private(set) var steps: [Step]

    /// SIGTERM, `grace` seconds, then SIGKILL.
    public init(grace: Double = 5) {
        self.init(steps: [Step(signal: .terminate, wait: grace)])
    }

    /// These steps, then SIGKILL when the last is not already one.
    public init(steps: [Step]) {
        self.steps = steps
        if steps.last?.signal != .kill { self.steps.append(Step(signal: .kill, wait: 0)) }
    }

    /// Seconds between SIGTERM and SIGKILL (the `shutdown_grace` of a declaration).
    public var grace: Double { steps.first?.signal == .terminate ? steps[0].wait : 0 }
}
