import MQTTCodec

/// Topic filter matching by level, shared by the subscription trie and the retained store.
public enum TopicMatch {
    /// Splits a topic or filter into levels without copying the characters (`Topic.levels`).
    @inlinable
    public static func levels(_ s: String) -> [Substring] { Topic.levels(s) }

    /// `levels(s)` written into `out`, which is emptied first and keeps its capacity.
    @inlinable
    public static func levels(_ s: String, into out: inout [Substring]) { Topic.levels(s, into: &out) }

    /// True when `filter` matches `topic` (MQTT 5.0 4.7), including the rule that a leading
    /// wildcard does not match a topic starting with `$`.
    public static func matches(filter: String, topic: String) -> Bool {
        let f = levels(filter)
        let t = levels(topic)
        if topic.hasPrefix("$") && (f.first == "+" || f.first == "#") { return false }
        var i = 0
        while i < f.count {
            if f[i] == "#" { return true }
            if i >= t.count { return false }
            if f[i] != "+" && f[i] != t[i] { return false }
            i += 1
        }
        return i == t.count
    }
}
