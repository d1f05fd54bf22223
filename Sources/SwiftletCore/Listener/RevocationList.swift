import Foundation
import SwiftASN1
import X509

/// The serial numbers a CRL file revokes, per issuer (RFC 5280 section 5.1). swift-certificates
/// reads certificates but not CRLs, so the few fields needed are read here with swift-asn1.
/// The file is trusted as the CA file is (an operator's file): its signature is not checked.
struct RevocationList {
    /// Issuer -> serial numbers (minimal big-endian bytes, no leading zeros).
    private(set) var revoked: [DistinguishedName: Set<[UInt8]>] = [:]

    /// One or more `-----BEGIN X509 CRL-----` blocks (any line length, CRLF or LF).
    init(pem: [UInt8]) throws {
        let text = String(decoding: pem, as: UTF8.self)
        var blocks = 0
        var rest = Substring(text)
        while let begin = rest.range(of: "-----BEGIN X509 CRL-----"), let end = rest.range(of: "-----END X509 CRL-----") {
            guard begin.upperBound <= end.lowerBound,
                  let der = Data(base64Encoded: rest[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }) else {
                throw ASN1Error.invalidASN1Object(reason: "bad base64 in an X509 CRL block")
            }
            try add(der: Array(der))
            blocks += 1
            rest = rest[end.upperBound...]
        }
        guard blocks > 0 else { throw ASN1Error.invalidASN1Object(reason: "no X509 CRL block") }
    }

    init(der: [UInt8]) throws { try add(der: der) }

    private mutating func add(der: [UInt8]) throws {
        let root = try DER.parse(der)
        guard case .constructed(let list) = root.content, let tbs = list.first(where: { _ in true }),
              case .constructed(let fields) = tbs.content else {
            throw ASN1Error.invalidASN1Object(reason: "not a CertificateList")
        }
        var f = Array(fields)
        // version INTEGER OPTIONAL, signature AlgorithmIdentifier, issuer Name, thisUpdate,
        // nextUpdate OPTIONAL, revokedCertificates OPTIONAL, [0] crlExtensions OPTIONAL.
        if f.first?.identifier == .integer { f.removeFirst() }
        guard f.count >= 3 else { throw ASN1Error.invalidASN1Object(reason: "short TBSCertList") }
        let issuer = try DistinguishedName(derEncoded: f[1])
        var rest = f.dropFirst(3)
        if let n = rest.first, n.identifier == .utcTime || n.identifier == .generalizedTime { rest = rest.dropFirst() }
        var serials = revoked[issuer] ?? []
        if let entries = rest.first, entries.identifier == .sequence, case .constructed(let list) = entries.content {
            for entry in list {
                guard case .constructed(let e) = entry.content, let serial = e.first(where: { _ in true }),
                      serial.identifier == .integer, case .primitive(let bytes) = serial.content else {
                    throw ASN1Error.invalidASN1Object(reason: "bad revoked certificate entry")
                }
                serials.insert(Self.minimal(bytes))
            }
        }
        revoked[issuer] = serials
    }

    var count: Int { revoked.values.reduce(0) { $0 + $1.count } }

    func isRevoked(_ cert: Certificate) -> Bool {
        revoked[cert.issuer]?.contains(Self.minimal(cert.serialNumber.bytes)) ?? false
    }

    static func minimal<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        Array(bytes.drop(while: { $0 == 0 }))
    }
}
