#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address with an optional prefix length ("10.0.0.0/8", "::1"): the
/// `ipaddr` of an ACL rule or row.
public struct CIDR: Sendable, Equatable {
    /// The network address: 4 or 16 bytes.
    public let bytes: [UInt8]
    /// Prefix length in bits.
    public let prefix: Int

    public init?(_ s: String) {
        let parts = s.split(separator: "/", maxSplits: 1)
        guard let addr = parts.first, let b = CIDR.parse(String(addr)) else { return nil }
        bytes = b
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= b.count * 8 else { return nil }
            prefix = p
        } else {
            prefix = b.count * 8
        }
    }

    /// The 4 or 16 bytes of an IPv4 / IPv6 address in text form; nil for anything else.
    public static func parse(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// True when `address` is inside this network. An IPv4-mapped IPv6 peer (::ffff:a.b.c.d)
    /// matches IPv4 rules.
    public func contains(_ address: String) -> Bool {
        guard var a = CIDR.parse(address) else { return false }
        if a.count == 16 && bytes.count == 4 && a[0..<10].allSatisfy({ $0 == 0 }) && a[10] == 0xff && a[11] == 0xff {
            a = Array(a[12...])
        }
        guard a.count == bytes.count else { return false }
        var bits = prefix
        for i in 0..<bytes.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xff : ~UInt8(0xff >> bits)
            if a[i] & mask != bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }
}
