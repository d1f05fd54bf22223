import Foundation
import GatewayKit
import GatewaySTOMP
import GatewaySockJS
import Logging
import NIOCore
import NIOPosix
import NIOHTTP1
import NIOWebSocket

/// STOMP over SockJS (`[sockjs]`, port 61616; emqttd_sockjs): the SockJS 0.3 endpoint under
/// `prefix`, each SockJS session one `StompConnection`, plus the demo page. Sessions outlive
/// the HTTP requests of the polling and streaming transports, so the listener and all its
/// sessions share one event loop: every session is touched on that loop only.
enum SockJSServer {
    static func start(settings: SockJSSettings, stomp: StompSettings, opener: any SessionOpener, stats: GatewayStats,
                      logger: Logger) async throws -> TCPListener {
        var script: ByteBuffer?
        if let data = FileManager.default.contents(atPath: settings.sockjsClient) {
            script = ByteBuffer(bytes: data)
        } else {
            logger.warning("the SockJS browser client is missing: the demo page and the iframe transport need it",
                           metadata: ["gateway.sockjs_client": "\(settings.sockjsClient)"])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let registry = SockJSRegistry(settings: settings, stomp: stomp, opener: opener, stats: stats, logger: logger,
                                      loop: group.next(), listener: "stomp-sockjs:http:\(settings.listener)", script: script)
        return try await TCPListener.start("STOMP over SockJS", address: settings.listener, group: group, logger: logger) { ch in
            try registry.configure(ch)
        }
    }
}

/// Where a session's frames go: one HTTP response of a polling or streaming transport, or a WebSocket.
protocol SockJSReceiver: AnyObject {
    /// Sends a frame; returns false when this receiver is done (polling answered, or the
    /// streaming response reached its byte limit) and the session must detach it.
    func send(_ frame: SockJSFrame) -> Bool
    func end()
    /// Stop (false) or resume (true) reading the client, where the transport can (WebSocket).
    func setReading(_ on: Bool)
}

extension SockJSReceiver {
    func setReading(_ on: Bool) {}
}

/// The sessions of one listener, on its one event loop.
final class SockJSRegistry: @unchecked Sendable {
    let settings: SockJSSettings
    let stomp: StompSettings
    let opener: any SessionOpener
    let stats: GatewayStats
    let logger: Logger
    let loop: any EventLoop
    let listener: String
    let script: ByteBuffer?
    var sessions: [String: SockJSSession] = [:]
    private var sweeper: RepeatedTask?

    init(settings: SockJSSettings, stomp: StompSettings, opener: any SessionOpener, stats: GatewayStats, logger: Logger,
         loop: any EventLoop, listener: String, script: ByteBuffer?) {
        self.settings = settings
        self.stomp = stomp
        self.opener = opener
        self.stats = stats
        self.logger = logger
        self.loop = loop
        self.listener = listener
        self.script = script
        sweeper = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in self?.sweep() }
    }

    func configure(_ ch: Channel) throws {
        let http = SockJSHTTPHandler(registry: self)
        let prefix = settings.prefix
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: max(stomp.limits.maxBodyLength * 2 + 65_536, 1 << 16),
            shouldUpgrade: { ch, head in
                let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
                switch SockJSPath.parse(path, prefix: prefix) {
                case .rawWebSocket, .session(_, _, "websocket"): return ch.eventLoop.makeSucceededFuture(HTTPHeaders())
                default: return ch.eventLoop.makeSucceededFuture(nil)
                }
            },
            upgradePipelineHandler: { [self] ch, head in
                let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
                var sessionId: String?
                if case .session(_, let sid, _) = SockJSPath.parse(path, prefix: prefix) { sessionId = sid }
                return ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 64,
                                                    maxAccumulatedFrameSize: max(stomp.limits.maxBodyLength * 2 + 65_536, 1 << 16)))
                    try ch.pipeline.syncOperations.addHandler(SockJSWebSocketHandler(registry: self, sessionId: sessionId))
                }
            })
        try ch.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { ctx in ctx.pipeline.removeHandler(http, promise: nil) }))
        try ch.pipeline.syncOperations.addHandler(http)
    }

    /// A new session (nil when `max_sessions` are open).
    func open(id: String, peer: SocketAddress?) -> SockJSSession? {
        guard stats.admit(limit: settings.maxSessions) else { return nil }
        let session = SockJSSession(id: id, registry: self, peer: peer)
        sessions[id] = session
        return session
    }

    func remove(_ session: SockJSSession) {
        if sessions[session.id] === session { sessions[session.id] = nil }
    }

    private func sweep() {
        let now = NIODeadline.now()
        for s in Array(sessions.values) { s.sweep(now: now) }
    }
}

/// One SockJS session: one STOMP connection. Frames written by the connection wait in the
/// outbox (bounded: above `max_outbound_bytes` the connection sees an unwritable client)
/// until a receiving request or the WebSocket takes them.
final class SockJSSession: StompTransport {
    let id: String
    private unowned let registry: SockJSRegistry
    private(set) var connection: StompConnection!
    private var outbox: [String] = []
    private var outboxBytes = 0
    private var receiver: SockJSReceiver?
    private var opened = false
    private var closing: SockJSFrame?
    private var ended = false
    private var detachedAt = NIODeadline.now()
    private var lastSent = NIODeadline.now()
    private var reading = true
    private var held: [() -> Void] = []
    /// A raw WebSocket session ends with its socket.
    var bound = false

    init(id: String, registry: SockJSRegistry, peer: SocketAddress?) {
        self.id = id
        self.registry = registry
        let origin = ClientOrigin(protocolName: "sockjs", peerAddress: peer?.ipAddress ?? "", peerPort: UInt16(peer?.port ?? 0),
                                  listener: registry.listener)
        connection = StompConnection(transport: self, eventLoop: registry.loop, opener: registry.opener, origin: origin,
                                     settings: registry.stomp, stats: registry.stats, logger: registry.logger,
                                     clientId: newClientId(prefix: "sockjs"))
    }

    // MARK: Receivers

    /// A receiving request or WebSocket arrives.
    func attach(_ r: SockJSReceiver) {
        if receiver != nil {
            _ = r.send(.anotherConnection)
            r.end()
            return
        }
        receiver = r
        if !opened {
            opened = true
            lastSent = NIODeadline.now()
            if !r.send(.open) {
                detach(r)
                return
            }
        }
        deliver()
    }

    func detach(_ r: SockJSReceiver) {
        guard receiver === r else { return }
        receiver = nil
        detachedAt = NIODeadline.now()
        if bound { expire() }
    }

    /// The client's messages: STOMP bytes. While the connection does not read (its broker side
    /// is behind) they wait here, and so does the sender's answer (`then`).
    func received(_ messages: [String], then: @escaping () -> Void = {}) {
        let run = { [self] in
            for m in messages {
                var b = ByteBuffer(string: m)
                connection.received(&b)
            }
            then()
        }
        if reading {
            run()
        } else if held.count < 1024 {
            held.append(run)
        } else {
            // The client keeps sending while its broker side takes nothing: the session ends.
            registry.logger.info("SockJS session outran the broker; closed", metadata: ["gateway.session": "\(id)"])
            close()
            expire()
        }
    }

    private func deliver() {
        guard let r = receiver else { return }
        if !outbox.isEmpty {
            let frame = SockJSFrame.messages(outbox)
            outbox = []
            outboxBytes = 0
            lastSent = NIODeadline.now()
            let more = r.send(frame)
            connection.writabilityChanged()
            if !more {
                detach(r)
                return
            }
        }
        if let c = closing {
            _ = r.send(c)
            r.end()
            detach(r)
        }
    }

    func sweep(now: NIODeadline) {
        if let r = receiver {
            if now - lastSent >= .seconds(Int64(registry.settings.heartbeatDelay)) {
                lastSent = now
                if !r.send(.heartbeat) { detach(r) }
            }
        } else if now - detachedAt >= .seconds(Int64(registry.settings.disconnectDelay)) {
            expire()
        }
    }

    /// The session is over: the STOMP connection ends (GW_CLOSE if it is still open).
    private func expire() {
        guard !ended else { return }
        ended = true
        if closing == nil { closing = .goAway }
        connection.transportClosed()
        registry.remove(self)
    }

    // MARK: StompTransport

    func write(_ bytes: ByteBuffer) {
        outbox.append(String(decoding: bytes.readableBytesView, as: UTF8.self))
        outboxBytes += bytes.readableBytes
    }

    func flush() { deliver() }

    func close() {
        if closing == nil { closing = .goAway }
        deliver()
        if receiver == nil { detachedAt = NIODeadline.now() }
    }

    var isWritable: Bool { outboxBytes <= registry.stomp.maxOutboundBytes }

    func setReading(_ on: Bool) {
        reading = on
        if bound { receiver?.setReading(on) }
        while reading, !held.isEmpty { held.removeFirst()() }
    }
}

/// One HTTP connection of the SockJS listener: the static pages, /info, the polling and
/// streaming transports and the send endpoints.
final class SockJSHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: SockJSRegistry
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false
    private var active: HTTPStreamReceiver?

    init(registry: SockJSRegistry) { self.registry = registry }

    private var maxBody: Int { max(registry.stomp.limits.maxBodyLength * 2 + 65_536, 1 << 16) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            tooLarge = false
        case .body(var b):
            if body.readableBytes + b.readableBytes > maxBody {
                tooLarge = true
            } else {
                body.writeBuffer(&b)
            }
        case .end:
            guard let h = head else { return }
            head = nil
            if tooLarge {
                respond(context, h, status: .payloadTooLarge, type: "text/plain", text: "Payload too large.\n")
            } else {
                route(context, h)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let a = active {
            active = nil
            a.gone()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    // MARK: Routing

    private func route(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        let parts = h.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts.first ?? "")
        let query = parts.count > 1 ? String(parts[1]) : ""
        let settings = registry.settings
        if settings.demo && (path == "/" || path == "/index.html") {
            return respond(context, h, status: .ok, type: "text/html; charset=UTF-8", text: DemoAssets.indexHTML(prefix: settings.prefix))
        }
        if path == "/stomp-lite.js" {
            return respond(context, h, status: .ok, type: "application/javascript; charset=UTF-8", text: DemoAssets.stompLite)
        }
        if path == "/sockjs.min.js", let script = registry.script {
            return respond(context, h, status: .ok, type: "application/javascript; charset=UTF-8", bytes: script, cache: true)
        }
        guard let kind = SockJSPath.parse(path, prefix: settings.prefix) else {
            return respond(context, h, status: .notFound, type: "text/plain", text: "Not found.\n")
        }
        switch kind {
        case .greeting:
            respond(context, h, status: .ok, type: "text/plain; charset=UTF-8", text: "Welcome to SockJS!\n")
        case .info:
            if h.method == .OPTIONS { return preflight(context, h, methods: "OPTIONS, GET") }
            let entropy = UInt32.random(in: 0...UInt32.max)
            respond(context, h, status: .ok, type: "application/json; charset=UTF-8",
                    text: "{\"websocket\":true,\"cookie_needed\":false,\"origins\":[\"*:*\"],\"entropy\":\(entropy)}")
        case .iframe:
            let page = DemoAssets.iframeHTML(sockjsURL: "/sockjs.min.js")
            let etag = "\"\(page.utf8.reduce(UInt32(5381)) { ($0 &* 33) ^ UInt32($1) })\""
            if h.headers["if-none-match"].first == etag {
                return respond(context, h, status: .notModified, type: nil, text: "", extra: [("ETag", etag)])
            }
            respond(context, h, status: .ok, type: "text/html; charset=UTF-8", text: page, cache: true, extra: [("ETag", etag)])
        case .rawWebSocket:
            respond(context, h, status: .badRequest, type: "text/plain", text: "Can \"Upgrade\" only to \"WebSocket\".")
        case .session(_, let sid, let transport):
            session(context, h, sid: sid, transport: transport, query: query)
        }
    }

    private func session(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, sid: String, transport: String, query: String) {
        let callback = Self.queryValue(query, "c")
        switch transport {
        case "websocket":
            respond(context, h, status: .badRequest, type: "text/plain", text: "Can \"Upgrade\" only to \"WebSocket\".")
        case "xhr_send", "jsonp_send":
            if h.method == .OPTIONS { return preflight(context, h, methods: "OPTIONS, POST") }
            guard h.method == .POST else { return respond(context, h, status: .methodNotAllowed, type: "text/plain", text: "") }
            guard let s = registry.sessions[sid] else {
                return respond(context, h, status: .notFound, type: "text/plain", text: "Not found.\n")
            }
            var payload = Array(body.readableBytesView)
            if transport == "jsonp_send", h.headers["content-type"].first?.hasPrefix("application/x-www-form-urlencoded") == true {
                payload = Array((Self.queryValue(String(decoding: payload, as: UTF8.self), "d") ?? "").utf8)
            }
            let messages: [String]
            do {
                messages = try SockJSJSON.messages(payload)
            } catch SockJSJSON.PayloadError.empty {
                return respond(context, h, status: .internalServerError, type: "text/plain", text: "Payload expected.")
            } catch {
                return respond(context, h, status: .internalServerError, type: "text/plain", text: "Broken JSON encoding.")
            }
            let ok: HTTPResponseStatus = transport == "xhr_send" ? .noContent : .ok
            let text = transport == "xhr_send" ? "" : "ok"
            s.received(messages) { [weak self] in
                guard let self else { return }
                self.respond(context, h, status: ok, type: "text/plain; charset=UTF-8", text: text)
            }
        default:
            guard let t = SockJSTransport(rawValue: transport) else {
                return respond(context, h, status: .notFound, type: "text/plain", text: "Not found.\n")
            }
            if h.method == .OPTIONS { return preflight(context, h, methods: "OPTIONS, POST") }
            let wanted: HTTPMethod = (t == .xhr || t == .xhrStreaming) ? .POST : .GET
            guard h.method == wanted else { return respond(context, h, status: .methodNotAllowed, type: "text/plain", text: "") }
            if t == .htmlFile || t == .jsonp {
                guard let c = callback, SockJSTransport.validCallback(c) else {
                    return respond(context, h, status: .internalServerError, type: "text/plain",
                                   text: callback == nil ? "\"callback\" parameter required" : "invalid \"callback\" parameter")
                }
            }
            let s: SockJSSession
            if let existing = registry.sessions[sid] {
                s = existing
            } else if let created = registry.open(id: sid, peer: context.channel.remoteAddress) {
                s = created
            } else {
                return respond(context, h, status: .serviceUnavailable, type: "text/plain", text: "Too many sessions.\n")
            }
            var headers = corsHeaders(h)
            headers.add(name: "Content-Type", value: t.contentType)
            headers.add(name: "Cache-Control", value: "no-store, no-cache, no-transform, must-revalidate, max-age=0")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
            let prelude = t.prelude(callback: callback)
            if !prelude.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: prelude)))), promise: nil)
            }
            context.flush()
            let r = HTTPStreamReceiver(handler: self, context: context, transport: t, callback: callback,
                                       limit: registry.settings.responseLimit, session: s, keepAlive: h.isKeepAlive)
            active = r
            s.attach(r)
        }
    }

    fileprivate func finished(_ r: HTTPStreamReceiver) {
        if active === r { active = nil }
    }

    // MARK: Responses

    private func corsHeaders(_ h: HTTPRequestHead) -> HTTPHeaders {
        var headers = HTTPHeaders()
        let origin = h.headers["origin"].first.flatMap { $0 == "null" ? nil : $0 } ?? "*"
        headers.add(name: "Access-Control-Allow-Origin", value: origin)
        headers.add(name: "Access-Control-Allow-Credentials", value: "true")
        if let asked = h.headers["access-control-request-headers"].first {
            headers.add(name: "Access-Control-Allow-Headers", value: asked)
        }
        return headers
    }

    private func preflight(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, methods: String) {
        respond(context, h, status: .noContent, type: nil, text: "", cache: true,
                extra: [("Access-Control-Allow-Methods", methods), ("Access-Control-Max-Age", "31536000")])
    }

    private func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, status: HTTPResponseStatus, type: String?,
                         text: String, cache: Bool = false, extra: [(String, String)] = []) {
        respond(context, h, status: status, type: type, bytes: ByteBuffer(string: text), cache: cache, extra: extra)
    }

    private func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, status: HTTPResponseStatus, type: String?,
                         bytes: ByteBuffer, cache: Bool = false, extra: [(String, String)] = []) {
        var headers = corsHeaders(h)
        if let type { headers.add(name: "Content-Type", value: type) }
        if cache {
            headers.add(name: "Cache-Control", value: "public, max-age=31536000")
        } else {
            headers.add(name: "Cache-Control", value: "no-store, no-cache, no-transform, must-revalidate, max-age=0")
        }
        for (k, v) in extra { headers.add(name: k, value: v) }
        headers.add(name: "Content-Length", value: "\(status == .noContent || status == .notModified ? 0 : bytes.readableBytes)")
        if !h.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))), promise: nil)
        if status != .noContent && status != .notModified && bytes.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        }
        let keep = h.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keep { context.close(promise: nil) }
        }
    }

    static func queryValue(_ query: String, _ key: String) -> String? {
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, kv[0] == key else { continue }
            return String(kv[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }
}

/// One polling or streaming response attached to a session.
final class HTTPStreamReceiver: SockJSReceiver {
    private weak var handler: SockJSHTTPHandler?
    private let context: ChannelHandlerContext
    private let transport: SockJSTransport
    private let callback: String?
    private let limit: Int
    private weak var session: SockJSSession?
    private let keepAlive: Bool
    private var sent = 0
    private var done = false

    init(handler: SockJSHTTPHandler, context: ChannelHandlerContext, transport: SockJSTransport, callback: String?, limit: Int,
         session: SockJSSession, keepAlive: Bool) {
        self.handler = handler
        self.context = context
        self.transport = transport
        self.callback = callback
        self.limit = limit
        self.session = session
        self.keepAlive = keepAlive
    }

    func send(_ frame: SockJSFrame) -> Bool {
        guard !done else { return false }
        let chunk = transport.wrap(frame, callback: callback)
        sent += chunk.utf8.count
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: chunk)))), promise: nil)
        if !transport.isStreaming || sent >= limit {
            end()
            return false
        }
        return true
    }

    func end() {
        guard !done else { return }
        done = true
        let keep = keepAlive
        let context = self.context
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            if !keep { context.close(promise: nil) }
        }
        handler?.finished(self)
        session?.detach(self)
    }

    /// The client went away mid-response.
    func gone() {
        guard !done else { return }
        done = true
        session?.detach(self)
    }
}

/// A WebSocket: the SockJS `websocket` transport (frames JSON-encoded), or the raw one at
/// `<prefix>/websocket` (one STOMP chunk per text message).
final class SockJSWebSocketHandler: ChannelDuplexHandler, SockJSReceiver {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let registry: SockJSRegistry
    private let sessionId: String?
    private var context: ChannelHandlerContext?
    private var session: SockJSSession?
    private var closed = false
    private var gate = ReadGate()

    init(registry: SockJSRegistry, sessionId: String?) {
        self.registry = registry
        self.sessionId = sessionId
    }

    private var raw: Bool { sessionId == nil }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let id = sessionId ?? "raw-" + newClientId(prefix: "ws")
        guard registry.sessions[id] == nil, let s = registry.open(id: id, peer: context.channel.remoteAddress) else {
            _ = send(.anotherConnection)
            end()
            return
        }
        s.bound = true
        session = s
        s.attach(self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            let bytes = Array(frame.unmaskedData.readableBytesView)
            if raw {
                session?.received([String(decoding: bytes, as: UTF8.self)])
            } else if !bytes.isEmpty {
                guard let messages = try? SockJSJSON.messages(bytes) else {
                    // Broken JSON: SockJS closes the session.
                    return end()
                }
                session?.received(messages)
            }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            end()
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        if let s = session { s.detach(self) }
        session = nil
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        gate.read(context)
    }

    func setReading(_ on: Bool) {
        gate.set(on, context)
    }

    func send(_ frame: SockJSFrame) -> Bool {
        guard !closed, let context else { return false }
        if raw {
            switch frame {
            case .messages(let ms):
                for m in ms { write(m, context) }
                context.flush()
            case .close:
                end()
                return false
            case .open, .heartbeat:
                break
            }
            return true
        }
        write(frame.text, context)
        context.flush()
        return true
    }

    private func write(_ text: String, _ context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buffer)), promise: nil)
    }

    func end() {
        guard !closed, let context else { return }
        closed = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .normalClosure)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).whenComplete { _ in
            context.close(promise: nil)
        }
        if let s = session { s.detach(self) }
        session = nil
    }
}
