import MQTTCodec

/// What a session asked for with one topic filter.
public struct SubscriptionOptions: Sendable, Equatable {
    public var qos: QoS
    public var noLocal: Bool
    public var retainAsPublished: Bool
    public var retainHandling: RetainHandling
    public var subscriptionIdentifier: Int?

    public init(qos: QoS, noLocal: Bool = false, retainAsPublished: Bool = false,
                retainHandling: RetainHandling = .sendOnSubscribe, subscriptionIdentifier: Int? = nil) {
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
        self.subscriptionIdentifier = subscriptionIdentifier
    }
}

/// A topic filter as subscribed, split into its shared-subscription group and real filter.
public struct ParsedFilter: Sendable, Equatable {
    /// The filter string exactly as the client sent it (the session's key).
    public var raw: String
    /// The filter matched against topics.
    public var filter: String
    /// Share group for `$share/group/filter` and `$queue/filter` (group "$queue").
    public var group: String?

    /// Parses `$share/<group>/<filter>` and `$queue/<filter>`; nil when invalid.
    public static func parse(_ raw: String) -> ParsedFilter? {
        if raw.hasPrefix("$share/") {
            let rest = raw.dropFirst("$share/".count)
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            let group = rest[..<slash]
            let filter = String(rest[rest.index(after: slash)...])
            guard !group.isEmpty, !group.contains("+"), !group.contains("#"), Topic.isValidFilter(filter) else { return nil }
            return ParsedFilter(raw: raw, filter: filter, group: String(group))
        }
        if raw.hasPrefix("$queue/") {
            let filter = String(raw.dropFirst("$queue/".count))
            guard Topic.isValidFilter(filter) else { return nil }
            return ParsedFilter(raw: raw, filter: filter, group: "$queue")
        }
        guard Topic.isValidFilter(raw) else { return nil }
        return ParsedFilter(raw: raw, filter: raw, group: nil)
    }
}
