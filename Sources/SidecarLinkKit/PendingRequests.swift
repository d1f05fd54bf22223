import HeapModule

/// The broker's outstanding requests on one sidecar connection (SPEC 2): request id -> waiter,
/// each with a deadline in monotonic nanoseconds. Ids count up from 1 and are never reused
/// while the connection lives, so a reply to an id at or below the last one given out that is
/// no longer here is late (its request timed out), and any other id is unknown. No I/O, no
/// clock: the caller passes the time in.
public struct PendingRequests<Waiter> {
    /// What a reply's id matched.
    public enum Match {
        case waiter(Waiter)
        /// A request that already timed out: the reply is discarded (SPEC 2).
        case late
        /// An id never given out: a protocol violation (SPEC 4).
        case unknown
    }

    private struct Deadline: Comparable {
        public var at: UInt64
        public var id: UInt32
        public static func < (a: Deadline, b: Deadline) -> Bool { (a.at, a.id) < (b.at, b.id) }
    }

    private var waiters: [UInt32: Waiter] = [:]
    /// Deadlines of the outstanding requests, and of answered ones not yet popped (skipped).
    private var deadlines = Heap<Deadline>()
    /// The last id given out (0: none yet).
    public private(set) var lastId: UInt32 = 0

    public var count: Int { waiters.count }
    public var isEmpty: Bool { waiters.isEmpty }

    /// Records a request and returns its id.
    public mutating func add(_ waiter: Waiter, deadline: UInt64) -> UInt32 {
        lastId &+= 1
        if lastId == 0 { lastId = 1 }
        waiters[lastId] = waiter
        deadlines.insert(Deadline(at: deadline, id: lastId))
        return lastId
    }

    /// The request a reply with this id answers, removed from the table.
    public mutating func match(_ id: UInt32) -> Match {
        if let w = waiters.removeValue(forKey: id) { return .waiter(w) }
        return id != 0 && id <= lastId ? .late : .unknown
    }

    /// Requests whose deadline is at or before `now`, removed from the table, earliest first.
    public mutating func expired(now: UInt64) -> [Waiter] {
        var out: [Waiter] = []
        while let d = deadlines.min, d.at <= now {
            _ = deadlines.popMin()
            if let w = waiters.removeValue(forKey: d.id) { out.append(w) }
        }
        return out
    }

    /// The earliest deadline of a request still outstanding.
    public mutating func nextDeadline() -> UInt64? {
        while let d = deadlines.min {
            if waiters[d.id] != nil { return d.at }
            _ = deadlines.popMin()
        }
        return nil
    }

    /// Every outstanding request, removed (the connection closed).
    public mutating func removeAll() -> [Waiter] {
        let all = waiters.sorted { $0.key < $1.key }.map(\.value)
        waiters = [:]
        deadlines = Heap()
        return all
    }
}
