import SwiftletRouting
import MQTTCodec

/// A session's own subscriptions, by the filter exactly as subscribed (the dictionary API the
/// session used before: subscript, `updateValue`, `removeValue`, iteration as key and value).
///
/// Most sessions hold none or one (a device's own command topic). A dictionary of one entry
/// was an allocation of ~250 B per subscribed session; one subscription is kept in an object of
/// its own (~100 B: the key is the filter's `raw`, not stored twice), a dictionary from the
/// second on, and nothing while empty. Filters compare by their bytes (`UTF8Key`,
/// [MQTT-4.7.3-4]): two filters that differ only in Unicode normalization are two
/// subscriptions.
public struct SessionSubscriptions: Sequence {
    public typealias Value = (ParsedFilter, SubscriptionOptions)
    public typealias Element = (key: String, value: Value)

    private enum Storage {
        case empty
        case one(OutOfLine<Value>)
        case many([UTF8Key: Value])
    }

    private var storage = Storage.empty

    public init() {}

    public var count: Int {
        switch storage {
        case .empty: return 0
        case .one: return 1
        case .many(let d): return d.count
        }
    }

    public var isEmpty: Bool { count == 0 }

    /// True while the subscriptions sit in a dictionary (two or more).
    var isDictionary: Bool {
        if case .many = storage { return true }
        return false
    }

    public subscript(filter: String) -> Value? {
        get {
            switch storage {
            case .empty: return nil
            case .one(let box): return Topic.sameBytes(box.value.0.raw, filter) ? box.value : nil
            case .many(let d): return d[UTF8Key(filter)]
            }
        }
        set {
            if let newValue { updateValue(newValue, forKey: filter) } else { removeValue(forKey: filter) }
        }
    }

    /// Adds or replaces the subscription to `filter`; returns the one it replaced.
    @discardableResult
    public mutating func updateValue(_ value: Value, forKey filter: String) -> Value? {
        // The key is the filter as subscribed: the parsed filter's `raw`.
        var value = value
        if !Topic.sameBytes(value.0.raw, filter) { value.0.raw = filter }
        switch storage {
        case .empty:
            storage = .one(OutOfLine(value))
            return nil
        case .one(let box):
            if Topic.sameBytes(box.value.0.raw, filter) {
                let old = box.value
                storage = .one(OutOfLine(value))
                return old
            }
            storage = .many([UTF8Key(box.value.0.raw): box.value, UTF8Key(filter): value])
            return nil
        case .many(var d):
            storage = .empty  // the dictionary stays uniquely referenced: no copy
            let old = d.updateValue(value, forKey: UTF8Key(filter))
            storage = .many(d)
            return old
        }
    }

    /// Removes the subscription to `filter`; returns it.
    @discardableResult
    public mutating func removeValue(forKey filter: String) -> Value? {
        switch storage {
        case .empty:
            return nil
        case .one(let box):
            guard Topic.sameBytes(box.value.0.raw, filter) else { return nil }
            storage = .empty
            return box.value
        case .many(var d):
            storage = .empty
            let old = d.removeValue(forKey: UTF8Key(filter))
            if d.count == 1, let last = d.first {
                storage = .one(OutOfLine(last.value))
            } else if !d.isEmpty {
                storage = .many(d)
            }
            return old
        }
    }

    public mutating func removeAll() { storage = .empty }

    /// The subscriptions' values (parsed filter and options).
    public var values: [Value] { map(\.value) }

    /// The filters as subscribed.
    public var keys: [String] { map(\.key) }

    public func makeIterator() -> AnyIterator<Element> {
        switch storage {
        case .empty:
            return AnyIterator { nil }
        case .one(let box):
            var done = false
            return AnyIterator {
                if done { return nil }
                done = true
                return (box.value.0.raw, box.value)
            }
        case .many(let d):
            var it = d.makeIterator()
            return AnyIterator { it.next().map { ($0.key.string, $0.value) } }
        }
    }
}
