import SwiftletConfig
import Foundation
import NIOSSL
import X509

/// A listener's certificate, key, CA, CRL and TLS options loaded into one context. Made at
/// start and again by `listeners reload-certs`/SIGHUP; a handshake uses the context current
/// when its connection was accepted, so a reload never touches an open connection.
struct ListenerTLS {
    let context: NIOSSLContext
    let revocations: RevocationList?

    /// Reads every file the listener names; a problem is a `ListenerFileError` naming the key.
    static func load(_ l: ListenerConfig) throws -> ListenerTLS {
        let certPath = l.certFile ?? "", keyPath = l.keyFile ?? ""
        let certPEM = try readFile(certPath, key: "certfile", listener: l)
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(certPEM) } catch { chain = [] }
        guard let leaf = chain.first else {
            throw ListenerFileError(l, "certfile", "\(certPath) holds no PEM certificate")
        }
        let keyPEM = try readFile(keyPath, key: "keyfile", listener: l)
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(bytes: keyPEM, format: .pem) } catch {
            throw ListenerFileError(l, "keyfile", "\(keyPath) holds no unencrypted PEM private key")
        }
        try checkKeyMatches(leaf: leaf, keyPEM: keyPEM, l)

        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                           privateKey: .privateKey(key))
        tls.minimumTLSVersion = l.minTLSVersion.nio
        if let c = l.ciphers, case .success(let codes) = TLSCipherNames.parse(c) {
            tls.cipherSuiteValues = codes.map { NIOTLSCipher(rawValue: $0) }
        }
        if let g = l.supportedGroups, case .success(let codes) = TLSGroupNames.parse(g) {
            tls.curves = codes.map { NIOTLSCurve(rawValue: $0) }
        }
        var revocations: RevocationList?
        switch l.verify {
        case .none:
            tls.certificateVerification = .none
        case .optional, .required:
            let caPath = l.caCertFile ?? ""
            let caPEM = try readFile(caPath, key: "cacertfile", listener: l)
            let cas = (try? NIOSSLCertificate.fromPEMBytes(caPEM)) ?? []
            guard !cas.isEmpty else { throw ListenerFileError(l, "cacertfile", "\(caPath) holds no PEM certificate") }
            tls.trustRoots = .certificates(cas)
            // Clients pick the certificate to send from the CA names the server lists.
            tls.sendCANameList = true
            tls.certificateVerification = l.verify == .required ? .noHostnameVerification : .optionalVerification
            if let crlPath = l.crlFile {
                let bytes = try readFile(crlPath, key: "crlfile", listener: l)
                do { revocations = try RevocationList(pem: bytes) } catch {
                    throw ListenerFileError(l, "crlfile", "\(crlPath) is not a PEM CRL (\(error))")
                }
            }
        }
        var context: NIOSSLContext
        do { context = try NIOSSLContext(configuration: tls) } catch {
            throw ListenerFileError(l, "keyfile", "\(keyPath) does not fit \(certPath) (\(error))")
        }
        // BoringSSL has checked that the key fits the certificate; an RSA key then signs
        // through libcrypto (SystemRSAKey: about half the CPU per handshake). TLS 1.0 and 1.1
        // sign with MD5+SHA-1, which that path does not offer: such listeners keep BoringSSL's.
        if l.minTLSVersion == .tlsv1_2 || l.minTLSVersion == .tlsv1_3, let rsa = SystemRSAKey(pem: keyPEM) {
            tls.privateKey = .privateKey(NIOSSLPrivateKey(customPrivateKey: rsa))
            do { context = try NIOSSLContext(configuration: tls) } catch {
                throw ListenerFileError(l, "keyfile", "\(keyPath): \(error)")
            }
        }
        return ListenerTLS(context: context, revocations: revocations)
    }

    private static func readFile(_ path: String, key: String, listener l: ListenerConfig) throws -> [UInt8] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ListenerFileError(l, key, "\(path) does not exist")
        }
        guard !isDir.boolValue else { throw ListenerFileError(l, key, "\(path) is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ListenerFileError(l, key, "\(path) cannot be read (permissions?)")
        }
        return Array(data)
    }

    /// The key must be the certificate's: compared by public key where swift-certificates
    /// reads the key type (RSA, ECDSA, Ed25519); BoringSSL checks the rest when the context is made.
    private static func checkKeyMatches(leaf: NIOSSLCertificate, keyPEM: [UInt8], _ l: ListenerConfig) throws {
        guard let der = try? leaf.toDERBytes(), let cert = try? Certificate(derEncoded: der),
              let pem = String(bytes: keyPEM, encoding: .utf8),
              let key = try? Certificate.PrivateKey(pemEncoded: pem) else { return }
        guard key.publicKey == cert.publicKey else {
            throw ListenerFileError(l, "keyfile", "\(l.keyFile ?? "") is not the private key of the certificate in \(l.certFile ?? "")")
        }
    }
}

/// A listener file that is missing, unreadable or does not fit: names the listener and key.
public struct ListenerFileError: Error, CustomStringConvertible {
    public let listener: String
    public let key: String
    public let message: String

    init(_ l: ListenerConfig, _ key: String, _ message: String) {
        self.listener = l.name
        self.key = "listeners.\(key)"
        self.message = message
    }

    public var description: String { "listener \(listener): key '\(key)': \(message)" }
}

extension ListenerConfig.TLSVersion {
    var nio: TLSVersion {
        switch self {
        case .tlsv1: return .tlsv1
        case .tlsv1_1: return .tlsv11
        case .tlsv1_2: return .tlsv12
        case .tlsv1_3: return .tlsv13
        }
    }
}

extension Listeners {
    /// Loads every TLS listener's files without binding (`swiftlet --check-config`).
    public static func checkFiles(_ config: BrokerConfig) -> [ListenerFileError] {
        config.listeners.filter(\.isTLS).compactMap { l in
            do { _ = try ListenerTLS.load(l); return nil } catch let e as ListenerFileError { return e } catch {
                return ListenerFileError(l, "certfile", "\(error)")
            }
        }
    }
}
