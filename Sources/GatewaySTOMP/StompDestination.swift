import MQTTCodec

/// STOMP destinations and MQTT topics: `/topic/a/b` and `a/b` both mean the MQTT topic `a/b`.
/// A subscriber gets each message under the destination form it subscribed with, so one that
/// wrote `/topic/...` sees `/topic/<topic>`, one that wrote a bare topic sees `<topic>`.
public struct StompDestination: Sendable, Equatable {
    public static let topicPrefix = "/topic/"

    /// The MQTT topic or filter.
    public var topic: String
    /// Whether it was written with the `/topic/` prefix.
    public var prefixed: Bool

    public init(topic: String, prefixed: Bool) {
        self.topic = topic
        self.prefixed = prefixed
    }

    /// nil when the text names no topic (empty, or `/topic/` alone).
    public init?(_ destination: String) {
        if destination.hasPrefix(Self.topicPrefix) {
            topic = String(destination.dropFirst(Self.topicPrefix.count))
            prefixed = true
        } else {
            topic = destination
            prefixed = false
        }
        if topic.isEmpty { return nil }
    }

    /// The destination of a message on MQTT topic `topic`, in this form.
    public func destination(for topic: String) -> String {
        prefixed ? Self.topicPrefix + topic : topic
    }

    /// A topic a SEND may publish to: a valid MQTT topic name, no wildcards.
    public var isValidTopicName: Bool {
        (try? Topic.validateName(topic)) != nil && !Topic.hasWildcard(topic)
    }

    /// A filter a SUBSCRIBE may use (`+` and `#` allowed).
    public var isValidFilter: Bool { Topic.isValidFilter(topic) }
}
