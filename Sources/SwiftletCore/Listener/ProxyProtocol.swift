import NIOCore

/// The PROXY protocol header a load balancer (HAProxy, AWS NLB, nginx) writes before the
/// client's bytes, v1 (text) or v2 (binary): the client's address as the balancer saw it.
/// A pure function over the bytes received so far.
enum ProxyHeader: Equatable {
    /// The header names the client (`PROXY TCP4/TCP6`, v2 PROXY over INET/INET6).
    case client(host: String, port: Int)
    /// `PROXY UNKNOWN` or v2 LOCAL (the balancer's own health check): keep the socket's address.
    case local

    enum Failure: Error, Equatable { case notProxyProtocol, malformed(String), tooLong }

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// v1 lines are at most 107 bytes (the specification's limit).
    static let v1MaxLength = 107
    /// v2 headers are 16 bytes and up to 65535 more; TLVs past this are refused.
    static let v2MaxLength = 16 + 2048

    /// The header and its length in bytes, or nil when more bytes are needed.
    static func parse(_ buf: ByteBuffer) throws -> (header: ProxyHeader, length: Int)? {
        let bytes = buf.readableBytesView
        let v1 = Array("PROXY ".utf8)
        let prefix = Array(bytes.prefix(12))
        if prefix.elementsEqual(v2Signature.prefix(prefix.count)) {
            return try parseV2(buf)
        }
        if prefix.elementsEqual(v1.prefix(prefix.count)) || prefix.starts(with: v1) {
            return try parseV1(buf)
        }
        throw Failure.notProxyProtocol
    }

    private static func parseV1(_ buf: ByteBuffer) throws -> (header: ProxyHeader, length: Int)? {
        let bytes = Array(buf.readableBytesView.prefix(v1MaxLength))
        guard let cr = bytes.firstIndex(of: 0x0D) else {
            if bytes.count >= v1MaxLength { throw Failure.tooLong }
            return nil
        }
        guard cr + 1 < bytes.count else { return nil }
        guard bytes[cr + 1] == 0x0A else { throw Failure.malformed("v1 line not ended by CRLF") }
        guard let line = String(bytes: bytes[..<cr], encoding: .ascii) else { throw Failure.malformed("v1 not ASCII") }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts[0] == "PROXY" else { throw Failure.malformed("v1 header") }
        switch parts[1] {
        case "UNKNOWN":
            return (.local, cr + 2)
        case "TCP4", "TCP6":
            guard parts.count == 6, let port = Int(parts[4]), (0...65_535).contains(port), Int(parts[5]) != nil,
                  (try? SocketAddress(ipAddress: parts[2], port: port)) != nil else {
                throw Failure.malformed("v1 addresses")
            }
            return (.client(host: parts[2], port: port), cr + 2)
        default:
            throw Failure.malformed("v1 protocol \(parts[1].prefix(10))")
        }
    }

    private static func parseV2(_ buf: ByteBuffer) throws -> (header: ProxyHeader, length: Int)? {
        guard buf.readableBytes >= 16 else { return nil }
        let start = buf.readerIndex
        guard let verCmd = buf.getInteger(at: start + 12, as: UInt8.self),
              let family = buf.getInteger(at: start + 13, as: UInt8.self),
              let len = buf.getInteger(at: start + 14, as: UInt16.self) else { return nil }
        guard verCmd >> 4 == 2 else { throw Failure.malformed("v2 version \(verCmd >> 4)") }
        let total = 16 + Int(len)
        guard total <= v2MaxLength else { throw Failure.tooLong }
        guard buf.readableBytes >= total else { return nil }
        switch verCmd & 0x0F {
        case 0: return (.local, total)  // LOCAL
        case 1: break                   // PROXY
        default: throw Failure.malformed("v2 command \(verCmd & 0x0F)")
        }
        let body = start + 16
        switch family >> 4 {
        case 1:  // AF_INET
            guard len >= 12, let a = buf.getBytes(at: body, length: 4), let port = buf.getInteger(at: body + 8, as: UInt16.self) else {
                throw Failure.malformed("v2 INET address")
            }
            return (.client(host: a.map(String.init).joined(separator: "."), port: Int(port)), total)
        case 2:  // AF_INET6
            guard len >= 36, let a = buf.getBytes(at: body, length: 16), let port = buf.getInteger(at: body + 32, as: UInt16.self) else {
                throw Failure.malformed("v2 INET6 address")
            }
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(a[i]) << 8 | UInt16(a[i + 1]), radix: 16)) }
            return (.client(host: groups.joined(separator: ":"), port: Int(port)), total)
        default:
            return (.local, total)  // AF_UNSPEC / AF_UNIX: no client address to take
        }
    }
}

/// First in the pipeline of a listener with `proxy_protocol = true`: reads the header, puts
/// the client's address in the connection's `ConnectionPeer`, passes the bytes after it on
/// and leaves the pipeline. A connection without a valid header is closed (refused).
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let peer: ConnectionPeer
    let listener: ListenerState
    private var buffer: ByteBuffer?
    private var done = false

    init(peer: ConnectionPeer, listener: ListenerState) {
        self.peer = peer
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        do {
            guard let (header, length) = try ProxyHeader.parse(buffer!) else { return }
            done = true
            if case .client(let host, let port) = header {
                peer.proxiedHost = host
                peer.proxiedPort = port
            }
            var rest = buffer!
            rest.moveReaderIndex(forwardBy: length)
            buffer = nil
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            done = true
            buffer = nil
            listener.refused(.proxy, peer: context.channel.remoteAddress, detail: "PROXY protocol header: \(error)")
            context.close(promise: nil)
        }
    }
}
