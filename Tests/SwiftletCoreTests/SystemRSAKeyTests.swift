import Crypto
import Foundation
import NIOCore
import NIOSSL
import XCTest
import _CryptoExtras
@testable import SwiftletCore

/// The RSA key that signs TLS handshakes through libcrypto: its signatures verify with an
/// independent implementation (swift-crypto), for every algorithm it offers BoringSSL.
final class SystemRSAKeyTests: XCTestCase {
    func testSignaturesVerify() throws {
        let priv = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let key = try XCTUnwrap(SystemRSAKey(pem: Array(priv.pemRepresentation.utf8)))
        let data = ByteBuffer(string: "TLS 1.3, server CertificateVerify" + String(repeating: " ", count: 64))
        let message = Data(data.readableBytesView)
        let cases: [(SignatureAlgorithm, _RSA.Signing.Padding, (Data) -> any Digest)] = [
            (.rsaPssRsaeSha256, .PSS, { SHA256.hash(data: $0) }),
            (.rsaPssRsaeSha384, .PSS, { SHA384.hash(data: $0) }),
            (.rsaPssRsaeSha512, .PSS, { SHA512.hash(data: $0) }),
            (.rsaPkcs1Sha256, .insecurePKCS1v1_5, { SHA256.hash(data: $0) }),
            (.rsaPkcs1Sha384, .insecurePKCS1v1_5, { SHA384.hash(data: $0) }),
            (.rsaPkcs1Sha512, .insecurePKCS1v1_5, { SHA512.hash(data: $0) }),
        ]
        for (algorithm, padding, hash) in cases {
            XCTAssertTrue(key.signatureAlgorithms.contains(algorithm))
            let sig = try key.sign(algorithm, data)
            XCTAssertEqual(sig.readableBytes, 256)
            let signature = _RSA.Signing.RSASignature(rawRepresentation: Data(sig.readableBytesView))
            XCTAssertTrue(verify(priv.publicKey, signature, hash(message), padding), "\(algorithm)")
            XCTAssertFalse(verify(priv.publicKey, signature, hash(message + [0]), padding), "\(algorithm) other data")
        }
        XCTAssertThrowsError(try key.sign(.ecdsaSecp256R1Sha256, data))
    }

    private func verify(_ key: _RSA.Signing.PublicKey, _ sig: _RSA.Signing.RSASignature, _ digest: any Digest,
                        _ padding: _RSA.Signing.Padding) -> Bool {
        switch digest {
        case let d as SHA256Digest: return key.isValidSignature(sig, for: d, padding: padding)
        case let d as SHA384Digest: return key.isValidSignature(sig, for: d, padding: padding)
        case let d as SHA512Digest: return key.isValidSignature(sig, for: d, padding: padding)
        default: return false
        }
    }

    func testOtherKeysAndGarbageStayWithBoringSSL() {
        XCTAssertNil(SystemRSAKey(pem: Array(P256.Signing.PrivateKey().pemRepresentation.utf8)))
        XCTAssertNil(SystemRSAKey(pem: Array("not a key".utf8)))
        XCTAssertNil(SystemRSAKey(pem: []))
    }
}
