import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// Retained messages, one per topic. Shared by all event loops behind one lock: it is touched
/// only by PUBLISH with the retain flag and by SUBSCRIBE, never by plain message routing.
/// Levels are `UTF8Key`s: two topics are the same topic only when their bytes are
/// [MQTT-4.7.3-4].
public final class RetainedStore: @unchecked Sendable {
    final class Node {
        var children: [UTF8Key: Node] = [:]
        var message: Message?
    }

    private let lock = NIOLock()
    private let root = Node()
    private var _count = 0
    private var _bytes = 0
    /// Limits (0: unlimited). A new topic beyond them is refused; replacing is always allowed.
    /// Under the lock (`setLimits`).
    private var maxCount: Int
    private var maxBytes: Int

    public init(maxCount: Int = 0, maxBytes: Int = 0) {
        self.maxCount = maxCount
        self.maxBytes = maxBytes
    }

    /// New limits (`reload config`). Messages already kept beyond lowered limits stay; new
    /// topics are refused until the store is under them again.
    public func setLimits(maxCount: Int, maxBytes: Int) {
        lock.withLock {
            self.maxCount = maxCount
            self.maxBytes = maxBytes
        }
    }

    public var count: Int { lock.withLock { _count } }
    public var bytes: Int { lock.withLock { _bytes } }

    /// Stores `message` for its topic, or clears the topic when the payload is empty.
    /// Returns false when the store is full and the message was not kept.
    @discardableResult
    public func set(_ message: Message) -> Bool {
        lock.withLock { () -> Bool in
            var node = root
            var path: [(Node, UTF8Key)] = []
            for level in Topic.levels(message.topic) {
                let key = UTF8Key(level)
                path.append((node, key))
                if let c = node.children[key] { node = c } else {
                    if message.payload.readableBytes == 0 { return true }
                    if maxCount > 0 && _count >= maxCount { return false }
                    let c = Node()
                    node.children[key] = c
                    node = c
                }
            }
            let size = message.payload.readableBytes
            if node.message == nil && size > 0 {
                if maxCount > 0 && _count >= maxCount { return false }
                if maxBytes > 0 && _bytes + size > maxBytes { return false }
            } else if let old = node.message, size > 0, maxBytes > 0, _bytes - old.payload.readableBytes + size > maxBytes {
                return false
            }
            if let old = node.message {
                _count -= 1
                _bytes -= old.payload.readableBytes
            }
            if message.payload.readableBytes == 0 {
                node.message = nil
                var child = node
                for (parent, key) in path.reversed() {
                    guard child.children.isEmpty && child.message == nil else { break }
                    parent.children[key] = nil
                    child = parent
                }
            } else {
                node.message = message
                _count += 1
                _bytes += message.payload.readableBytes
            }
            return true
        }
    }

    /// Retained messages whose topic matches `filter`; expired ones are dropped on the way.
    public func match(filter: String, now: NIODeadline) -> [Message] {
        let levels = Topic.levels(filter)
        var out: [Message] = []
        var expired: [Message] = []
        lock.withLock {
            Self.collect(root, levels, 0, true, &out)
        }
        out.removeAll { m in
            if m.isExpired(now: now) { expired.append(m); return true }
            return false
        }
        for m in expired { clearIfSame(m) }
        return out
    }

    private func clearIfSame(_ m: Message) {
        lock.withLock {
            var node = root
            for level in Topic.levels(m.topic) {
                guard let c = node.children[UTF8Key(level)] else { return }
                node = c
            }
            if node.message === m {
                node.message = nil
                _count -= 1
                _bytes -= m.payload.readableBytes
            }
        }
    }

    /// Every retained message (for listings); bounded by `limit`.
    public func all(limit: Int = .max) -> [Message] {
        var out: [Message] = []
        lock.withLock {
            var stack = [root]
            while let n = stack.popLast(), out.count < limit {
                if let m = n.message { out.append(m) }
                stack.append(contentsOf: n.children.values)
            }
        }
        return out
    }

    private static func collect(_ node: Node, _ f: [Substring], _ i: Int, _ top: Bool, _ out: inout [Message]) {
        if i == f.count {
            if let m = node.message { out.append(m) }
            return
        }
        let level = f[i]
        if level == "#" {
            // '#' also matches the parent level itself.
            if let m = node.message, !top { out.append(m) }
            var stack: [(Node, Bool)] = node.children.map { ($0.value, top && $0.key.string.hasPrefix("$")) }
            while let (n, skip) = stack.popLast() {
                if skip { continue }
                if let m = n.message { out.append(m) }
                for c in n.children.values { stack.append((c, false)) }
            }
            return
        }
        if level == "+" {
            for (key, c) in node.children {
                if top && key.string.hasPrefix("$") { continue }
                collect(c, f, i + 1, false, &out)
            }
            return
        }
        if let c = node.children[UTF8Key(level)] { collect(c, f, i + 1, false, &out) }
    }
}
