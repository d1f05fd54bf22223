/// The plain (non-shared) subscriptions at one trie node, one per session.
///
/// Most nodes of a large trie hold exactly one: a client's own topic (`devices/<id>/cmd`,
/// the "Connections" curve of docs/benchmarks.md). A dictionary of one entry costs an
/// allocation of about 160 B per node and per event loop's replica; one entry is kept inline
/// in the node instead, and a dictionary is made at the second (and dropped again when one is
/// left).
struct SubscriberSet {
    private enum Storage {
        case empty
        case one(SubscriberEntry)
        case many([ObjectIdentifier: SubscriberEntry])
    }

    private var storage = Storage.empty

    var isEmpty: Bool {
        if case .empty = storage { return true }
        return false
    }

    var count: Int {
        switch storage {
        case .empty: return 0
        case .one: return 1
        case .many(let d): return d.count
        }
    }

    /// True while the entries sit in a dictionary (two or more).
    var isDictionary: Bool {
        if case .many = storage { return true }
        return false
    }

    /// Adds `entry`, or replaces the entry of its session. Returns true when it replaced one.
    @discardableResult
    mutating func update(_ entry: SubscriberEntry) -> Bool {
        let id = ObjectIdentifier(entry.session)
        switch storage {
        case .empty:
            storage = .one(entry)
            return false
        case .one(let e):
            if ObjectIdentifier(e.session) == id {
                storage = .one(entry)
                return true
            }
            storage = .many([ObjectIdentifier(e.session): e, id: entry])
            return false
        case .many(var d):
            storage = .empty  // the dictionary stays uniquely referenced: no copy
            let replaced = d.updateValue(entry, forKey: id) != nil
            storage = .many(d)
            return replaced
        }
    }

    /// Removes the entry of the session `id`. Returns true when it existed.
    @discardableResult
    mutating func remove(_ id: ObjectIdentifier) -> Bool {
        switch storage {
        case .empty:
            return false
        case .one(let e):
            guard ObjectIdentifier(e.session) == id else { return false }
            storage = .empty
            return true
        case .many(var d):
            storage = .empty
            let removed = d.removeValue(forKey: id) != nil
            if d.count == 1, let last = d.first {
                storage = .one(last.value)
            } else {
                storage = .many(d)
            }
            return removed
        }
    }

    /// The entry of the session `id`, if any.
    subscript(id: ObjectIdentifier) -> SubscriberEntry? {
        switch storage {
        case .empty: return nil
        case .one(let e): return ObjectIdentifier(e.session) == id ? e : nil
        case .many(let d): return d[id]
        }
    }

    @inline(__always)
    func forEach(_ body: (SubscriberEntry) -> Void) {
        switch storage {
        case .empty: return
        case .one(let e): body(e)
        case .many(let d): for e in d.values { body(e) }
        }
    }
}
