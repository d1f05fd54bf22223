/// `swiftlet-ctl plugins reload NAME` as a hand-over, as a state machine: the new process is
/// started next to the old one; when it registers, new requests go to it (the hub swaps the
/// connection) while the requests in flight on the old connection finish there; once none is
/// left (or `drainTimeout` passed) the old process gets its teardown plan. A new process that
/// ends or does not register within `registerTimeout` is stopped and the old one keeps
/// serving: a reload never leaves the sidecar down. No I/O, no clock: `Supervisor` executes
/// the actions and passes monotonic nanoseconds in.
public struct SidecarHandOver: Sendable {
    public enum Phase: String, Sendable {
        /// The new process runs; its registration is awaited.
        case starting
        /// The new process serves; requests in flight on the old connection finish.
        case draining
        /// The old process is being stopped (teardown plan).
        case stopping
        case done
        case failed
    }

    public enum Action: Equatable, Sendable {
        /// Stop the old process now (its connection has nothing outstanding, or the drain timed out).
        case stopOld
        /// Stop the new process: it did not register in time. The old one keeps serving.
        case stopNew
        /// The reload is complete; the text is the answer to ctl.
        case finished(String)
        /// The reload failed; the old process keeps serving.
        case failed(String)
    }

    public let name: String
    public let registerTimeout: UInt64
    public let drainTimeout: UInt64
    public private(set) var phase = Phase.starting
    /// The requests left on the old connection when the drain timed out (0: drained).
    public private(set) var abandoned = 0
    private var deadline: UInt64
    private var lastOutstanding = 0

    /// Starts a hand-over at `now` (the new process is being spawned).
    public init(name: String, now: UInt64, registerTimeout: UInt64, drainTimeout: UInt64) {
        self.name = name
        self.registerTimeout = registerTimeout
        self.drainTimeout = drainTimeout
        deadline = now &+ registerTimeout
    }

    /// The new process could not be started or ended before it registered.
    public mutating func newEnded(_ why: String) -> [Action] {
        guard phase == .starting else { return [] }
        phase = .failed
        return [.failed("\(name) not reloaded: the new process \(why) before it registered; the running one keeps serving")]
    }

    /// The new process registered: new requests now go to it.
    public mutating func newRegistered(now: UInt64) -> [Action] {
        guard phase == .starting else { return [] }
        phase = .draining
        deadline = now &+ drainTimeout
        return []
    }

    /// How many requests the old connection still has outstanding (none once it is gone).
    public mutating func oldOutstanding(_ count: Int) -> [Action] {
        guard phase == .draining else { return [] }
        lastOutstanding = count
        guard count == 0 else { return [] }
        phase = .stopping
        return [.stopOld]
    }

    /// The old process has exited.
    public mutating func oldStopped() -> [Action] {
        guard phase == .stopping else { return [] }
        phase = .done
        let left = abandoned == 0 ? "" : " (\(abandoned) request(s) still outstanding on the old one at the drain timeout)"
        return [.finished("\(name) reloaded: the new process serves, the old one stopped\(left)")]
    }

    /// Time passed: the registration or the drain may have timed out.
    public mutating func tick(now: UInt64) -> [Action] {
        guard now >= deadline else { return [] }
        switch phase {
        case .starting:
            phase = .failed
            return [.stopNew, .failed("\(name) not reloaded: the new process did not register within "
                                      + "\(Double(registerTimeout) / 1e9) s; the running one keeps serving")]
        case .draining:
            phase = .stopping
            abandoned = lastOutstanding
            return [.stopOld]
        default:
            return []
        }
    }

    /// When `tick` has something to do.
    public var nextDeadline: UInt64? { phase == .starting || phase == .draining ? deadline : nil }

    public var isOver: Bool { phase == .done || phase == .failed }
}
