import MQTTCodec

/// Topic filter matching by level (levels cut by `Topic.levels`), the reference the
/// subscription trie and the retained store agree with.
public enum TopicMatch {
    /// True when `filter` matches `topic` (MQTT 5.0 4.7), including the rule that a leading
    /// wildcard does not match a topic starting with `$`.
    public static func matches(filter: String, topic: String) -> Bool {
        let f = Topic.levels(filter)
        let t = Topic.levels(topic)
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
