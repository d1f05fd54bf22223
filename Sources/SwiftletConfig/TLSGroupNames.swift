/// The key exchange groups a listener's `supported_groups` may name (the TLS
/// supported_groups extension, OpenSSL's `Groups`), with their code points. swift-nio-ssl
/// hands the list to BoringSSL, which knows these five; a name it does not know is refused
/// here, at load time, with the key named, rather than when the listener starts.
public enum TLSGroupNames {
    public static let table: [(name: String, aliases: [String], code: UInt16)] = [
        ("X25519MLKEM768", [], 0x11EC),
        ("x25519", [], 0x1D),
        ("secp256r1", ["P-256", "prime256v1"], 0x17),
        ("secp384r1", ["P-384"], 0x18),
        ("secp521r1", ["P-521"], 0x19),
    ]

    /// The code points of a `:`-separated list, in the order given (the server's
    /// preference), or the reason it is refused.
    public static func parse(_ list: String) -> Result<[UInt16], ConfigProblemText> {
        var codes: [UInt16] = []
        for raw in list.split(whereSeparator: { $0 == ":" || $0 == "," || $0 == " " }) {
            let name = raw.lowercased()
            guard let e = table.first(where: { $0.name.lowercased() == name || $0.aliases.contains { $0.lowercased() == name } })
            else {
                let known = table.map(\.name).joined(separator: ", ")
                return .failure(.init("unknown key exchange group \(String(raw).debugDescription) (known: \(known))"))
            }
            if !codes.contains(e.code) { codes.append(e.code) }
        }
        guard !codes.isEmpty else { return .failure(.init("names no key exchange group")) }
        return .success(codes)
    }
}
