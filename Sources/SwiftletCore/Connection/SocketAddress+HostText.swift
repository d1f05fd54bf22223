import NIOCore

extension SocketAddress {
    /// The address as text, like `ipAddress`. IPv4 is formatted here, without allocating:
    /// NIO's `ipAddress` fills a heap array through `inet_ntop`, whose `sprintf` was about 2 %
    /// of the broker's user time per accepted connection. IPv6 keeps `inet_ntop` (its
    /// zero-run compression is not worth repeating). nil for a Unix socket.
    var hostText: String? {
        guard case .v4(let a) = self else { return ipAddress }
        let n = UInt32(bigEndian: a.address.sin_addr.s_addr)
        // "255.255.255.255" is 15 bytes: a small string, kept inline.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 15) { out in
            var i = 0
            for shift in stride(from: 24, through: 0, by: -8) {
                let octet = Int((n >> UInt32(shift)) & 0xff)
                if octet >= 100 { out[i] = UInt8(ascii: "0") + UInt8(octet / 100); i += 1 }
                if octet >= 10 { out[i] = UInt8(ascii: "0") + UInt8(octet / 10 % 10); i += 1 }
                out[i] = UInt8(ascii: "0") + UInt8(octet % 10)
                i += 1
                if shift > 0 { out[i] = UInt8(ascii: "."); i += 1 }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: out[..<i]), as: UTF8.self)
        }
    }
}
