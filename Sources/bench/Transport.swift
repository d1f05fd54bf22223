import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOWebSocket

/// How the generator's connections reach the broker: plain TCP (the default), TLS
/// (`--tls`, swift-nio-ssl) and/or MQTT over WebSocket (`--ws PATH`, NIOWebSocket), so the
/// same scenarios measure a broker's tls, ws and wss listeners.
enum Transport {
    /// A client TLS context for `--tls` (made once per run; verification of the broker's
    /// certificate against `--cafile`, or none).
    static func makeTLSContext(_ o: ConnectionOptions) throws -> NIOSSLContext? {
        guard o.tls else { return nil }
        var c = TLSConfiguration.makeClientConfiguration()
        if let ca = o.cafile {
            c.trustRoots = .file(ca)
            c.certificateVerification = .noHostnameVerification
        } else {
            c.certificateVerification = .none
        }
        if let v = o.tlsVersion {
            c.minimumTLSVersion = v == "1.3" ? .tlsv13 : .tlsv12
            c.maximumTLSVersion = v == "1.3" ? .tlsv13 : .tlsv12
        }
        return try NIOSSLContext(configuration: c)
    }

    /// The pipeline of one client connection: [TLS] [HTTP upgrade -> WebSocket] client.
    static func setUp(_ ch: Channel, client: MQTTClient, tls: NIOSSLContext?, options o: ConnectionOptions) throws {
        let sync = ch.pipeline.syncOperations
        if let tls { try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
        guard let path = o.ws else { return try sync.addHandler(client) }
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let request = UpgradeRequest(path: path, host: o.host)
        let upgrader = NIOWebSocketClientUpgrader(requestKey: key, maxFrameSize: 1 << 26, automaticErrorHandling: true) { channel, _ in
            channel.eventLoop.makeCompletedFuture {
                channel.pipeline.syncOperations.removeHandler(request, promise: nil)
                try channel.pipeline.syncOperations.addHandler(ClientWebSocketBridge())
                client.startsOnAdd = true
                try channel.pipeline.syncOperations.addHandler(client)
            }
        }
        try sync.addHTTPClientHandlers(withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
        try sync.addHandler(request)
        // An upgrade that fails closes the channel before the client was added: fail it.
        ch.closeFuture.whenComplete { _ in
            if client.state == .connecting, client.context == nil {
                client.ready.fail(BenchError.connect(client.config.clientId, "WebSocket upgrade failed"))
            }
        }
    }
}

/// Sends the upgrade request when the connection is up.
final class UpgradeRequest: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let path: String
    let host: String
    init(path: String, host: String) {
        self.path = path
        self.host = host
    }

    func channelActive(context: ChannelHandlerContext) {
        var h = HTTPHeaders()
        h.add(name: "Host", value: host)
        h.add(name: "Sec-WebSocket-Protocol", value: "mqtt")
        h.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: h))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A response that is not an upgrade: the broker refused.
        context.close(promise: nil)
    }
}

/// MQTT bytes in masked binary frames out; binary frames in as bytes; ping answered.
final class ClientWebSocketBridge: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            context.fireChannelRead(wrapInboundOut(frame.unmaskedData))
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(),
                                                                 data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: bytes)), promise: promise)
    }
}
