import SwiftletConfig
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOWebSocket

/// MQTT over WebSocket (ws, wss): the HTTP upgrade on NIOWebSocket's server upgrader, with the
/// listener's path, subprotocols, Origin check and proxy address header.
enum WebSocketListener {
    /// Subprotocols answered, in the order they are preferred (MQTT 5.0 section 6, 3.1.1 section 6).
    static let subprotocols = ["mqtt", "mqttv5", "mqttv3.1"]

    static func addUpgrade(channel: Channel, broker: Broker, listener: ListenerState, connectionPeer: ConnectionPeer?) throws {
        let l = listener.config
        let maxFrame = l.maxFrameSize ?? max(broker.connectionPolicy.mqtt.maxPacketSize, 1 << 16)
        // A connection that never completes the upgrade is closed after idle_timeout, as one
        // that never sends CONNECT is.
        let deadline = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(broker.connectionPolicy.mqtt.idleTimeout * 1000))) {
            listener.refused(.websocket, peer: channel.remoteAddress, detail: "no WebSocket upgrade within idle_timeout")
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in deadline.cancel() }
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maxFrame,
            shouldUpgrade: { channel, head in
                guard check(head, l) == nil else { return channel.eventLoop.makeSucceededFuture(nil) }
                var headers = HTTPHeaders()
                if let proto = chooseSubprotocol(head.headers) { headers.add(name: "Sec-WebSocket-Protocol", value: proto) }
                if let name = l.proxyAddressHeader, let peer = connectionPeer, let host = forwardedAddress(head.headers[name]) {
                    peer.proxiedHost = host
                    peer.proxiedPort = 0
                }
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            upgradePipelineHandler: { channel, _ in
                deadline.cancel()
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(WebSocketMQTTBridge(listener: listener))
                    try Listeners.addMQTTHandlers(channel: channel, broker: broker, listener: listener, connectionPeer: connectionPeer)
                }
            })
        let fallback = NotWebSocketResponder(config: l, listener: listener)
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                context.pipeline.syncOperations.removeHandler(fallback, promise: nil)
            }))
        try channel.pipeline.syncOperations.addHandler(fallback)
    }

    /// Why a request may not upgrade (its HTTP status and a line for the body), nil when it may.
    static func check(_ head: HTTPRequestHead, _ l: ListenerConfig) -> (HTTPResponseStatus, String)? {
        guard head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) == l.path else {
            return (.notFound, "not found; MQTT over WebSocket is at \(l.path)")
        }
        if !l.allowedOrigins.isEmpty {
            if let origin = head.headers.first(name: "Origin") {
                guard l.allowedOrigins.contains(origin) else { return (.forbidden, "origin not allowed") }
            } else if !l.allowOriginAbsence {
                return (.forbidden, "an Origin header is required")
            }
        }
        guard head.headers[canonicalForm: "Connection"].contains(where: { $0.lowercased() == "upgrade" }),
              head.headers.first(name: "Upgrade")?.lowercased() == "websocket" else {
            return (.upgradeRequired, "MQTT over WebSocket: upgrade with subprotocol mqtt")
        }
        return nil
    }

    /// The first subprotocol the client offers that is MQTT; nil when it offers none (the
    /// upgrade goes ahead without one, as mosquitto and EMQX do for clients that send none).
    static func chooseSubprotocol(_ headers: HTTPHeaders) -> String? {
        let offered = headers["Sec-WebSocket-Protocol"].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return offered.first(where: { subprotocols.contains($0) })
    }

    /// The client's address from an X-Forwarded-For style header: the leftmost entry, if it
    /// is an IP address.
    static func forwardedAddress(_ values: [String]) -> String? {
        guard let first = values.first?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces),
              !first.isEmpty else { return nil }
        let host = first.hasPrefix("[") ? String(first.dropFirst().prefix(while: { $0 != "]" })) : first
        return (try? SocketAddress(ipAddress: host, port: 0)) != nil ? host : nil
    }
}

/// Answers HTTP requests that did not upgrade to MQTT over WebSocket (wrong path, an origin
/// not allowed, a plain GET), so such a client gets a status line and a close instead of
/// silence; counts them, and the TLS and HTTP errors before the upgrade, on the listener.
final class NotWebSocketResponder: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let config: ListenerConfig
    let listener: ListenerState
    private var answered = false

    init(config: ListenerConfig, listener: ListenerState) {
        self.config = config
        self.listener = listener
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data), !answered else { return }
        answered = true
        let (status, text) = WebSocketListener.check(head, config) ?? (.badRequest, "bad WebSocket upgrade request")
        listener.refused(.websocket, peer: context.channel.remoteAddress, detail: "\(status.code) \(head.method) \(head.uri.prefix(100))")
        let body = text + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        if status == .upgradeRequired { headers.add(name: "Upgrade", value: "websocket") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        var buf = context.channel.allocator.buffer(capacity: body.utf8.count)
        buf.writeString(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let peer = context.channel.remoteAddress.map(ListenerState.describe) ?? "unknown"
        switch error {
        case is NIOWebSocketUpgradeError:
            // shouldUpgrade said no: the request comes on to channelRead, which answers and counts it.
            return
        case NIOSSLError.uncleanShutdown:
            break
        case is NIOSSLError, is BoringSSLError:
            listener.refused(.tls, peer: peer, detail: "TLS handshake failed: \(error)")
        default:
            // HTTPParserError and the like; NIO's HTTP error handler has answered 400.
            listener.malformed(peer: peer, detail: "\(error)", clientId: "")
        }
        context.close(promise: nil)
    }
}
