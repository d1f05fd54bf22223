import SwiftletRouting
import MQTTCodec

/// A subscription of one session to one filter, as the router holds it.
public struct SubscriberEntry {
    public let session: Session
    public var options: SubscriptionOptions
}

/// A shared subscription group at one filter.
final class SharedGroup {
    var members: [SubscriberEntry] = []
    var next = 0
    var sticky: ObjectIdentifier?
}

/// The subscription trie of one event loop. Confined to that loop: no locks. Every loop holds
/// an identical replica (see `Router`), so a publish is matched on the publisher's loop.
///
/// Levels, share names and cached topics are `UTF8Key`s: compared by their bytes, never
/// normalized [MQTT-4.7.3-4].
public final class SubscriptionTrie {
    final class Node {
        var children: [UTF8Key: Node] = [:]
        /// One subscription inline, a dictionary from the second (`SubscriberSet`).
        var subscribers = SubscriberSet()
        var shared: [UTF8Key: SharedGroup] = [:]
        var isEmpty: Bool { children.isEmpty && subscribers.isEmpty && shared.isEmpty }
    }

    let root = Node()
    public private(set) var count = 0
    /// The levels of the topic being matched, reused by every `match` (the trie is confined
    /// to its loop).
    private var levels: [Substring] = []
    private var keys: [UTF8Key] = []
    private static let plus: UTF8Key = "+"
    private static let hash: UTF8Key = "#"

    /// A filter's levels as the trie's keys. `Router` cuts them once for every replica: the
    /// replicas then share the keys' storage.
    public static func keys(_ filter: String) -> [UTF8Key] {
        Topic.levels(filter).map(UTF8Key.init)
    }

    /// What a topic matched, kept for the next PUBLISH to it: publishers repeat their topics,
    /// and splitting a topic and hashing each level at each node was most of a QoS 0
    /// one-to-one message's routing time. Emptied by every change to the trie; bounded by
    /// `cacheTopics` topics and `cacheEntries` subscriptions in all (a topic matching more
    /// than `cachePerTopic` is not kept).
    private struct Matched {
        var entries: [SubscriberEntry] = []
        var groups: [SharedGroup] = []
    }
    private var cache: [UTF8Key: Matched] = [:]
    private var cachedEntries = 0
    static let cacheTopics = 1024
    static let cachePerTopic = 64
    static let cacheEntries = 16_384

    private func changed() {
        if !cache.isEmpty {
            cache.removeAll()
            cachedEntries = 0
        }
    }

    public init() {}

    /// False when no subscription can match a `$SYS/...` topic: wildcards at the first level
    /// never match `$` topics, so such a subscription sits under the `$SYS` child of the root.
    var hasSysSubscriptions: Bool { root.children["$SYS"] != nil }

    /// Adds or replaces a subscription. Returns true when it replaced an existing one.
    @discardableResult
    public func insert(_ filter: ParsedFilter, entry: SubscriberEntry) -> Bool {
        insert(filter, levels: Self.keys(filter.filter), entry: entry)
    }

    /// `insert` with the filter's levels already cut (`keys(_:)`).
    @discardableResult
    public func insert(_ filter: ParsedFilter, levels: [UTF8Key], entry: SubscriberEntry) -> Bool {
        changed()
        var node = root
        for level in levels {
            // One lookup: the default-value subscript inserts the new node in place.
            node = Self.same(&node.children[level, default: Node()])
        }
        let id = ObjectIdentifier(entry.session)
        if let group = filter.group {
            let g = Self.same(&node.shared[UTF8Key(group), default: SharedGroup()])
            if let i = g.members.firstIndex(where: { ObjectIdentifier($0.session) == id }) {
                g.members[i] = entry
                return true
            }
            g.members.append(entry)
            count += 1
            return false
        }
        let existed = node.subscribers.update(entry)
        if !existed { count += 1 }
        return existed
    }

    @inline(__always)
    private static func same<T: AnyObject>(_ object: inout T) -> T { object }

    /// Removes a subscription. Returns true when it existed.
    @discardableResult
    public func remove(_ filter: ParsedFilter, session: Session) -> Bool {
        remove(filter, levels: Self.keys(filter.filter), session: session)
    }

    /// `remove` with the filter's levels already cut (`keys(_:)`).
    @discardableResult
    public func remove(_ filter: ParsedFilter, levels: [UTF8Key], session: Session) -> Bool {
        changed()
        var path: [(Node, UTF8Key)] = []
        var node = root
        for level in levels {
            guard let c = node.children[level] else { return false }
            path.append((node, level))
            node = c
        }
        let id = ObjectIdentifier(session)
        var removed = false
        if let group = filter.group {
            let key = UTF8Key(group)
            if let g = node.shared[key], let i = g.members.firstIndex(where: { ObjectIdentifier($0.session) == id }) {
                g.members.remove(at: i)
                if g.sticky == id { g.sticky = nil }
                if g.members.isEmpty { node.shared[key] = nil }
                removed = true
            }
        } else {
            removed = node.subscribers.remove(id)
        }
        if removed {
            count -= 1
            // Prune empty nodes bottom-up.
            var child = node
            for (parent, level) in path.reversed() {
                guard child.isEmpty else { break }
                parent.children[level] = nil
                child = parent
            }
        }
        return removed
    }

    /// Calls `visit` for every non-shared subscription matching `topic`, and `visitShared`
    /// once per matching shared group.
    func match(topic: String, visit: (SubscriberEntry) -> Void, visitShared: (SharedGroup) -> Void) {
        let key = UTF8Key(topic)
        if let m = cache[key] {
            for e in m.entries { visit(e) }
            for g in m.groups { visitShared(g) }
            return
        }
        var m = Matched()
        Topic.levels(topic, into: &levels)
        for l in levels { keys.append(UTF8Key(l)) }
        let dollar = topic.utf8.first == UInt8(ascii: "$")
        Self.walk(root, keys, 0, dollar, { m.entries.append($0) }, { m.groups.append($0) })
        levels.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
        for e in m.entries { visit(e) }
        for g in m.groups { visitShared(g) }
        let n = m.entries.count + m.groups.count
        guard n <= Self.cachePerTopic else { return }
        if cache.count >= Self.cacheTopics || cachedEntries + n > Self.cacheEntries {
            cache.removeAll(keepingCapacity: true)
            cachedEntries = 0
        }
        cache[key] = m
        cachedEntries += n
    }

    private static func walk(_ node: Node, _ levels: [UTF8Key], _ i: Int, _ dollar: Bool,
                             _ visit: (SubscriberEntry) -> Void, _ visitShared: (SharedGroup) -> Void) {
        let wildOK = !(dollar && i == 0)
        if wildOK, let hash = node.children[Self.hash] {
            hash.subscribers.forEach(visit)
            for g in hash.shared.values { visitShared(g) }
        }
        if i == levels.count {
            node.subscribers.forEach(visit)
            for g in node.shared.values { visitShared(g) }
            return
        }
        if let c = node.children[levels[i]] { walk(c, levels, i + 1, dollar, visit, visitShared) }
        if wildOK, let plus = node.children[Self.plus] { walk(plus, levels, i + 1, dollar, visit, visitShared) }
    }
}
