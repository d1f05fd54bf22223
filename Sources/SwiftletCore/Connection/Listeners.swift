import SwiftletConfig
import Atomics
import Foundation
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

enum Listeners {
    /// Binds one listener and returns its server channel.
    static func bind(_ l: ListenerConfig, broker: Broker) async throws -> Channel {
        let active = ManagedAtomic<Int>(0)
        // The TLS context of a listener lives in a box that `reload config` may refill (new
        // certificate files): each accepted connection takes the one in it then.
        var tlsBox: NIOLockedValueBox<NIOSSLContext>?
        if l.kind == .tls || l.kind == .wss {
            let box = NIOLockedValueBox(try makeSSLContext(l))
            broker.tlsContexts.withLockedValue { $0[l.name] = box }
            tlsBox = box
        }
        let sslBox = tlsBox
        let name = l.name  // one string shared by every connection of the listener
        let bootstrap = ServerBootstrap(group: broker.group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            // Each channel keeps its last receive buffer: start it small (see the type).
            .childChannelOption(ChannelOptions.recvAllocator, value: CompactRecvAllocator())
            .childChannelOption(ChannelOptions.writeBufferWaterMark,
                                value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { channel in
                let n = active.wrappingIncrementThenLoad(ordering: .relaxed)
                channel.closeFuture.whenComplete { _ in active.wrappingDecrement(ordering: .relaxed) }
                if n > l.maxConnections {
                    broker.logger.warning("max_connections reached, refusing connection", metadata: ["listener": "\(name)"])
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslBox {
                        try sync.addHandler(NIOSSLServerHandler(context: sslBox.withLockedValue { $0 }))
                    }
                    switch l.kind {
                    case .tcp, .tls:
                        try addMQTTHandlers(channel: channel, broker: broker, listener: name)
                    case .ws, .wss:
                        try addWebSocketUpgrade(channel: channel, path: l.path, broker: broker, listener: name)
                    }
                }
            }
        return try await bootstrap.bind(host: l.host, port: l.port).get()
    }

    /// The MQTT pipeline: decoder and connection handler. `peerHost`/`peerPort` default to the
    /// socket's remote address (a gateway session passes the address its sidecar named).
    static func addMQTTHandlers(channel: Channel, broker: Broker, listener: String = "embedded",
                                peerHost: String? = nil, peerPort: Int? = nil) throws {
        let ctx = broker.loopContext(for: channel.eventLoop)
        let peer = peerHost == nil ? channel.remoteAddress : nil
        let handler = MQTTConnectionHandler(broker: broker, ctx: ctx,
                                            peerHost: peerHost ?? peer?.ipAddress ?? "unknown",
                                            peerPort: peerPort ?? peer?.port ?? 0, listenerName: listener)
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    static func makeSSLContext(_ l: ListenerConfig) throws -> NIOSSLContext {
        let certs = try NIOSSLCertificate.fromPEMFile(l.certFile!)
        let key = try NIOSSLPrivateKey(file: l.keyFile!, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: certs.map { .certificate($0) }, privateKey: .privateKey(key))
        if let ca = l.caCertFile { tls.trustRoots = .file(ca) }
        if l.verifyPeer {
            tls.certificateVerification = l.failIfNoPeerCert ? .noHostnameVerification : .optionalVerification
        } else {
            tls.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: tls)
    }

    static func addWebSocketUpgrade(channel: Channel, path: String, broker: Broker, listener: String) throws {
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: max(broker.config.mqtt.maxPacketSize, 1 << 16),
            shouldUpgrade: { channel, head in
                guard head.uri.split(separator: "?").first.map(String.init) == path else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                var headers = HTTPHeaders()
                let offered = head.headers["Sec-WebSocket-Protocol"].flatMap { $0.split(separator: ",") }
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                if let proto = offered.first(where: { $0 == "mqtt" || $0 == "mqttv3.1" }) {
                    headers.add(name: "Sec-WebSocket-Protocol", value: proto)
                }
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WebSocketMQTTBridge())
                    try addMQTTHandlers(channel: channel, broker: broker, listener: listener)
                }
            })
        let fallback = NotWebSocketResponder(path: path)
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                context.pipeline.syncOperations.removeHandler(fallback, promise: nil)
            }))
        try channel.pipeline.syncOperations.addHandler(fallback)
    }
}

/// Answers HTTP requests that did not upgrade to MQTT over WebSocket (wrong path, plain
/// GET), so such a client gets a status line and a close instead of silence.
final class NotWebSocketResponder: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let path: String
    init(path: String) { self.path = path }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let onPath = head.uri.split(separator: "?").first.map(String.init) == path
        let status: HTTPResponseStatus = onPath ? .upgradeRequired : .notFound
        let body = onPath ? "MQTT over WebSocket: upgrade with subprotocol mqtt\n" : "not found; MQTT over WebSocket is at \(path)\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        if onPath { headers.add(name: "Upgrade", value: "websocket") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        var buf = context.channel.allocator.buffer(capacity: body.utf8.count)
        buf.writeString(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
