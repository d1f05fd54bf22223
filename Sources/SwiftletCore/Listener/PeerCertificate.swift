import SwiftletConfig
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// What the listener learnt about the client before MQTT: a verified client certificate's
/// names (`PeerCertificateHandler` fills them when the handshake completes) and the address a
/// proxy named (PROXY protocol header, X-Forwarded-For). Shared with the connection's
/// `MQTTConnectionHandler`, which reads it at CONNECT (on ws/wss that handler is added only
/// after the upgrade). One per connection, only on listeners that ask for any of these.
final class ConnectionPeer: @unchecked Sendable {
    /// The client's address as a proxy in front of the listener gave it.
    var proxiedHost: String?
    var proxiedPort: Int?
    /// The subject's common name (the last CN when there are several, as OpenSSL reads it).
    var commonName: String?
    /// The subject DN in RFC 4514 form, most specific first: `CN=sensor-1,O=Acme,C=SE`.
    var subject: String?
    let asUsername: ListenerConfig.CertField?
    let asClientId: ListenerConfig.CertField?

    init(asUsername: ListenerConfig.CertField? = nil, asClientId: ListenerConfig.CertField? = nil) {
        self.asUsername = asUsername
        self.asClientId = asClientId
    }

    func value(_ field: ListenerConfig.CertField) -> String? {
        switch field {
        case .cn: return commonName
        case .dn: return subject
        }
    }

    /// Reads the names of `cert`.
    func fill(from cert: Certificate) {
        subject = cert.subject.description
        commonName = nil
        for rdn in cert.subject {
            for a in rdn where a.type == .RDNAttributeType.commonName {
                commonName = String(a.value) ?? a.value.description
            }
        }
    }
}

/// After the TLS handshake: reads the client's certificate into the connection's `ConnectionPeer`,
/// and closes the connection before any MQTT byte is read when the listener's CRL revokes
/// it. Removes itself once done, so later reads do not pass through it.
final class PeerCertificateHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    let peer: ConnectionPeer
    let revocations: RevocationList?
    let listener: ListenerState
    private var refused = false

    init(peer: ConnectionPeer, revocations: RevocationList?, listener: ListenerState) {
        self.peer = peer
        self.revocations = revocations
        self.listener = listener
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted = event as? TLSUserEvent else {
            return context.fireUserInboundEventTriggered(event)
        }
        if let nioCert = try? context.pipeline.syncOperations.nioSSL_peerCertificate(),
           let der = try? nioCert.toDERBytes(), let cert = try? Certificate(derEncoded: der) {
            peer.fill(from: cert)
            if let revocations, revocations.isRevoked(cert) {
                refused = true
                listener.refused(.revoked, peer: context.channel.remoteAddress,
                                 detail: "client certificate revoked by crlfile: \(peer.subject ?? "?")")
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        context.fireChannelRead(data)
    }
}
