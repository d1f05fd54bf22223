import CLibCrypto
import NIOCore
import NIOSSL

/// A listener's RSA private key, signing with the system's OpenSSL libcrypto instead of
/// BoringSSL: the one wrapper that owns libcrypto's pointers.
///
/// The RSA signature in each TLS handshake is most of a handshake's CPU. OpenSSL 3 signs
/// RSA 2048 with AVX-512 IFMA where the CPU has it; BoringSSL (swift-nio-ssl) has no such
/// path, and on such a CPU takes about twice as long per signature (the bench machine:
/// about 500 µs against OpenSSL's 256 µs, `openssl speed rsa2048`). BoringSSL still does
/// the rest of TLS; it asks this key for the signature through swift-nio-ssl's custom key
/// hook (`NIOSSLCustomPrivateKey`), synchronously, on the connection's event loop.
final class SystemRSAKey: NIOSSLCustomPrivateKey, Hashable, @unchecked Sendable {
    /// Immutable after init; libcrypto allows concurrent signing with one EVP_PKEY.
    private let key: OpaquePointer

    /// The key in `pem`, when it is an unencrypted RSA key libcrypto reads; else nil (and the
    /// listener signs with BoringSSL as before).
    init?(pem: [UInt8]) {
        // A memory BIO of its own (BIO_new_mem_buf would keep pointing into the array).
        guard !pem.isEmpty, let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        guard pem.withUnsafeBytes({ BIO_write(bio, $0.baseAddress, Int32(clamping: $0.count)) }) == Int32(clamping: pem.count) else {
            return nil
        }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            ERR_clear_error()
            return nil
        }
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else {
            EVP_PKEY_free(key)
            return nil
        }
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    static func == (a: SystemRSAKey, b: SystemRSAKey) -> Bool { a === b }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// TLS 1.3 signs with PSS; TLS 1.2 clients may ask for PKCS #1 (BoringSSL's own order).
    var signatureAlgorithms: [SignatureAlgorithm] {
        [.rsaPssRsaeSha256, .rsaPkcs1Sha256, .rsaPssRsaeSha384, .rsaPkcs1Sha384, .rsaPssRsaeSha512, .rsaPkcs1Sha512,
         .rsaPkcs1Sha1]
    }

    func sign(channel: Channel, algorithm: SignatureAlgorithm, data: ByteBuffer) -> EventLoopFuture<ByteBuffer> {
        channel.eventLoop.makeCompletedFuture { try sign(algorithm, data) }
    }

    /// Raw RSA decryption (TLS 1.2's RSA key exchange, when `ciphers` names such a suite).
    func decrypt(channel: Channel, data: ByteBuffer) -> EventLoopFuture<ByteBuffer> {
        channel.eventLoop.makeCompletedFuture { try decrypt(data) }
    }

    struct Failure: Error, CustomStringConvertible {
        let step: String
        var description: String { "libcrypto RSA: \(step) failed" }
    }

    func sign(_ algorithm: SignatureAlgorithm, _ data: ByteBuffer) throws -> ByteBuffer {
        let (pss, md): (Bool, OpaquePointer?) = switch algorithm {
        case .rsaPssRsaeSha256: (true, EVP_sha256())
        case .rsaPssRsaeSha384: (true, EVP_sha384())
        case .rsaPssRsaeSha512: (true, EVP_sha512())
        case .rsaPkcs1Sha256: (false, EVP_sha256())
        case .rsaPkcs1Sha384: (false, EVP_sha384())
        case .rsaPkcs1Sha512: (false, EVP_sha512())
        case .rsaPkcs1Sha1: (false, EVP_sha1())
        default: throw Failure(step: "signature algorithm \(algorithm)")
        }
        guard let ctx = EVP_MD_CTX_new() else { throw Failure(step: "EVP_MD_CTX_new") }
        defer {
            EVP_MD_CTX_free(ctx)
            ERR_clear_error()
        }
        var pctx: OpaquePointer?
        guard EVP_DigestSignInit(ctx, &pctx, md, nil, key) == 1, let keyCtx = pctx else {
            throw Failure(step: "EVP_DigestSignInit")
        }
        if pss {
            // TLS 1.3 (RFC 8446 4.2.3): PSS with MGF1 of the same hash, salt as long as the hash.
            guard EVP_PKEY_CTX_set_rsa_padding(keyCtx, RSA_PKCS1_PSS_PADDING) == 1,
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(keyCtx, RSA_PSS_SALTLEN_DIGEST) == 1
            else { throw Failure(step: "PSS parameters") }
        }
        return try produce(data, step: "EVP_DigestSign") { EVP_DigestSign(ctx, $0, $1, $2, $3) }
    }

    func decrypt(_ data: ByteBuffer) throws -> ByteBuffer {
        guard let pctx = EVP_PKEY_CTX_new(key, nil) else { throw Failure(step: "EVP_PKEY_CTX_new") }
        defer {
            EVP_PKEY_CTX_free(pctx)
            ERR_clear_error()
        }
        guard EVP_PKEY_decrypt_init(pctx) == 1, EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_NO_PADDING) == 1 else {
            throw Failure(step: "EVP_PKEY_decrypt_init")
        }
        return try produce(data, step: "EVP_PKEY_decrypt") { EVP_PKEY_decrypt(pctx, $0, $1, $2, $3) }
    }

    /// Runs a libcrypto call that reads `input` and writes at most the key's size (a
    /// signature, a decrypted block), returning what it wrote.
    private func produce(_ input: ByteBuffer, step: String,
                         _ call: (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int>, UnsafePointer<UInt8>?, Int) -> Int32)
        throws -> ByteBuffer {
        var length = Int(EVP_PKEY_get_size(key))
        var out = ByteBufferAllocator().buffer(capacity: length)
        var failed = false
        input.withUnsafeReadableBytes { bytes in
            _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { buffer in
                guard call(buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), &length,
                           bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count) == 1
                else { failed = true; return 0 }
                return length
            }
        }
        guard !failed, length > 0 else { throw Failure(step: step) }
        return out
    }
}
