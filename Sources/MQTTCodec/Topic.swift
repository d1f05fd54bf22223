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

    /// The levels of a topic name or filter, without copying the characters ("/a//b/" has
    /// five, three of them empty).
    @inlinable
    public static func levels(_ s: String) -> [Substring] {
        var out: [Substring] = []
        levels(s, into: &out)
        return out
    }

    /// `levels(s)` written into `out`, which is emptied first and keeps its capacity: a hot
    /// path that reuses one array splits without allocating.
    ///
    /// Split on the UTF-8 bytes: the separator is U+002F (MQTT 4.7.1.1), a byte that never
    /// occurs inside another character's encoding, so every cut is on a scalar boundary.
    /// Walking `Character`s instead ran grapheme breaking on every byte (about a seventh of a
    /// SUBSCRIBE's cost in the 100,000-filter curve) and did not cut at a `/` followed by a
    /// combining mark. Routing, the retained store and the ACL rules all split here, so they
    /// agree on what a level is.
    @inlinable
    public static func levels(_ s: String, into out: inout [Substring]) {
        out.removeAll(keepingCapacity: true)
        let u = s.utf8
        var start = u.startIndex
        var i = start
        while i != u.endIndex {
            if u[i] == UInt8(ascii: "/") {
                out.append(s[start..<i])
                start = u.index(after: i)
            }
            u.formIndex(after: &i)
        }
        out.append(s[start...])
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
