/// A log-linear histogram of non-negative integers (latencies in nanoseconds).
///
/// Values below 128 have their own bucket; above, every power of two is split into 64
/// buckets, so a reported percentile is within 1/64 (1.6 %) of the true value. Fixed size
/// (3,840 counters), no allocation when recording, mergeable by addition. Not thread-safe:
/// one histogram per event loop, merged at the end of a run.
struct Histogram: Sendable {
    private static let linear = 128
    private static let subBuckets = 64
    private static let bucketCount = linear + 58 * subBuckets

    private(set) var counts: [UInt64]
    private(set) var total: UInt64 = 0
    private(set) var sum: Double = 0
    private(set) var max: UInt64 = 0
    private(set) var min: UInt64 = .max

    init() {
        counts = Array(repeating: 0, count: Self.bucketCount)
    }

    static func index(of v: UInt64) -> Int {
        if v < UInt64(linear) { return Int(v) }
        let msb = 63 - v.leadingZeroBitCount
        let shift = msb - 6
        let mantissa = Int(v >> UInt64(shift))  // 64..<128
        return linear + (shift - 1) * subBuckets + (mantissa - subBuckets)
    }

    /// Lowest and highest value that fall into bucket `i`.
    static func range(of i: Int) -> (UInt64, UInt64) {
        if i < linear { return (UInt64(i), UInt64(i)) }
        let k = i - linear
        let shift = UInt64(k / subBuckets + 1)
        let mantissa = UInt64(k % subBuckets + subBuckets)
        return (mantissa << shift, ((mantissa + 1) << shift) - 1)
    }

    mutating func record(_ v: UInt64) {
        counts[Self.index(of: v)] &+= 1
        total &+= 1
        sum += Double(v)
        if v > max { max = v }
        if v < min { min = v }
    }

    mutating func merge(_ other: Histogram) {
        for i in counts.indices { counts[i] &+= other.counts[i] }
        total &+= other.total
        sum += other.sum
        if other.max > max { max = other.max }
        if other.min < min { min = other.min }
    }

    var mean: Double { total == 0 ? 0 : sum / Double(total) }

    /// The value at quantile `q` (0...1): the midpoint of the bucket holding that rank,
    /// clamped to the observed minimum and maximum.
    func value(atQuantile q: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        let rank = Swift.max(1, UInt64((q * Double(total)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank {
                let (lo, hi) = Self.range(of: i)
                let mid = lo + (hi - lo) / 2
                return Swift.min(Swift.max(mid, min), max)
            }
        }
        return max
    }
}
