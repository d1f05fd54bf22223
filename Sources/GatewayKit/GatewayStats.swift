import NIOConcurrencyHelpers

/// Counters of one gateway (clients now, connections accepted and refused, messages dropped
/// for slow clients, bad input dropped), shown by `swiftlet-ctl gateways`.
public final class GatewayStats: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var clients = 0
        public var accepted = 0
        public var refused = 0
        public var dropped = 0
        public var malformed = 0
    }

    public let name: String
    private let box = NIOLockedValueBox(Snapshot())

    public init(name: String) { self.name = name }

    public var snapshot: Snapshot { box.withLockedValue { $0 } }

    /// Counts a new client unless `limit` are connected; false when refused.
    public func admit(limit: Int) -> Bool {
        box.withLockedValue { s in
            guard s.clients < limit else {
                s.refused += 1
                return false
            }
            s.clients += 1
            s.accepted += 1
            return true
        }
    }

    /// Counts a client admitted by the caller's own limit.
    public func join() {
        box.withLockedValue {
            $0.clients += 1
            $0.accepted += 1
        }
    }

    public func refuse() { box.withLockedValue { $0.refused += 1 } }
    public func left() { box.withLockedValue { $0.clients -= 1 } }
    public func drop(_ n: Int = 1) { box.withLockedValue { $0.dropped += n } }
    public func malformed(_ n: Int = 1) { box.withLockedValue { $0.malformed += n } }
}
