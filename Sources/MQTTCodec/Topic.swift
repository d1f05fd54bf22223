/// Topic name and topic filter rules (MQTT 5.0 4.7), independent of routing.
public enum Topic {
    /// A topic name in PUBLISH or a will: non-empty, no wildcard characters.
    public static func validateName(_ topic: String) throws {
        if topic.isEmpty { throw MQTTCodecError.topicNameInvalid("empty topic name") }
        for b in topic.utf8 where b == UInt8(ascii: "+") || b == UInt8(ascii: "#") {
            throw MQTTCodecError.topicNameInvalid("wildcard in topic name \(topic.debugDescription)")
        }
    }

    /// True when `filter` is a valid topic filter: non-empty, `#` only as the whole last
    /// level, `+` only as a whole level.
    public static func isValidFilter(_ filter: String) -> Bool {
        let bytes = filter.utf8
        if bytes.isEmpty { return false }
        var levelStart = true
        var prev: UInt8 = 0
        var idx = bytes.startIndex
        while idx != bytes.endIndex {
            let b = bytes[idx]
            let next = bytes.index(after: idx)
            if b == UInt8(ascii: "#") {
                if !levelStart || next != bytes.endIndex { return false }
            } else if b == UInt8(ascii: "+") {
                if !levelStart { return false }
                if next != bytes.endIndex && bytes[next] != UInt8(ascii: "/") { return false }
            } else if prev == UInt8(ascii: "+") || prev == UInt8(ascii: "#") {
                if b != UInt8(ascii: "/") { return false }
            }
            levelStart = b == UInt8(ascii: "/")
            prev = b
            idx = next
        }
        return true
    }

    /// Number of levels (separators + 1).
    public static func levelCount(_ topic: String) -> Int {
        var n = 1
        for b in topic.utf8 where b == UInt8(ascii: "/") { n += 1 }
        return n
    }

    public static func hasWildcard(_ filter: String) -> Bool {
        filter.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }
    }
}
