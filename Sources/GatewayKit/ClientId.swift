/// A client id for a gateway client that brings none (STOMP): `<prefix>-` and 16 random
/// hex digits.
public func newClientId(prefix: String) -> String {
    var g = SystemRandomNumberGenerator()
    let n = g.next() as UInt64
    let hex = String(n, radix: 16)
    return prefix + "-" + String(repeating: "0", count: 16 - hex.count) + hex
}
