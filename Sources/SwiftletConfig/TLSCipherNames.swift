/// The TLS 1.2 cipher suites a listener's `ciphers` may name, by IANA name and OpenSSL
/// name, with their code points. BoringSSL configures TLS 1.3 suites itself (they cannot be
/// chosen), and an unknown name in the list swift-nio-ssl hands to BoringSSL would stop the
/// process, so the list is checked here, at load time, with the key named.
public enum TLSCipherNames {
    public static let table: [(iana: String, openssl: String, code: UInt16)] = [
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384", 0xC030),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", 0xCCA8),
        ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", 0xCCA9),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA", 0xC009),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA", 0xC00A),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA", 0xC013),
        ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA", 0xC014),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256", 0x9C),
        ("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384", 0x9D),
        ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", 0x2F),
        ("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", 0x35),
    ]

    static let tls13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]

    /// The code points of a `:`-separated list, or the reason it is refused.
    public static func parse(_ list: String) -> Result<[UInt16], ConfigProblemText> {
        var codes: [UInt16] = []
        for raw in list.split(whereSeparator: { $0 == ":" || $0 == "," || $0 == " " }) {
            let name = String(raw)
            if tls13.contains(name) {
                return .failure(.init("\(name) is a TLS 1.3 suite; those are always on and cannot be chosen"))
            }
            guard let e = table.first(where: { $0.iana == name || $0.openssl == name }) else {
                return .failure(.init("unknown cipher suite \(name.debugDescription) (use names such as ECDHE-RSA-AES128-GCM-SHA256 or TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"))
            }
            if !codes.contains(e.code) { codes.append(e.code) }
        }
        guard !codes.isEmpty else { return .failure(.init("names no cipher suite")) }
        return .success(codes)
    }
}

/// A reason text usable as a `Result` failure.
public struct ConfigProblemText: Error, Equatable, Sendable {
    public let text: String
    public init(_ text: String) { self.text = text }
}
