import AuthHTTP
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SidecarKit

/// The sidecar's admin endpoint on loopback (`admin_listen`): an HTTP service that revokes
/// access asks the broker, through this sidecar, to drop cached decisions.
///
///     POST /invalidate?username=NAME     every cached decision for that username
///     POST /invalidate?clientid=ID       ... for that client id
///     POST /invalidate?all=1             everything this broker cached
///
/// Answers 200 when INVALIDATE was sent, 503 when the sidecar is not connected to the broker
/// (a reconnecting sidecar re-registers, and the broker then drops its entries anyway),
/// 400 without a scope, 404 / 405 for other paths and methods.
final class AdminServer: Sendable {
    let channel: Channel

    static func start(_ address: String, sidecar: Sidecar, logger: Logger) async throws -> AdminServer {
        guard let (host, port) = AuthHTTPSettings.splitHostPort(address) else {
            throw AdminError("admin_listen: bad address \(address)")
        }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(AdminHandler(sidecar: sidecar, logger: logger))
                }
            }
            .bind(host: host, port: port).get()
        let bound = channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? address
        logger.info("admin endpoint listening on \(bound)", metadata: ["admin.address": "\(bound)"])
        return AdminServer(channel: channel)
    }

    private init(channel: Channel) { self.channel = channel }

    func close() async {
        try? await channel.close()
    }
}

struct AdminError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

private final class AdminHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let sidecar: Sidecar
    let logger: Logger
    private var head: HTTPRequestHead?

    init(sidecar: Sidecar, logger: Logger) {
        self.sidecar = sidecar
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break           // no body is read; a large one is discarded as it arrives
        case .end:
            guard let head else { return }
            self.head = nil
            handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts.first.map(String.init) ?? ""
        guard path == "/invalidate" else { return respond(context, head, .notFound, "not found\n") }
        guard head.method == .POST else { return respond(context, head, .methodNotAllowed, "use POST\n") }
        guard let scopes = AdminQuery.scopes(parts.count > 1 ? String(parts[1]) : "") else {
            return respond(context, head, .badRequest, "give username=NAME, clientid=ID or all=1\n")
        }
        let sidecar = self.sidecar
        let logger = self.logger
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { () -> Bool in
            var sent = true
            for scope in scopes {
                let ok = await sidecar.invalidate(scope)
                logger.info("admin invalidate \(scope): \(ok ? "sent" : "not connected")")
                sent = sent && ok
            }
            return sent
        }.whenComplete { result in
            let (handler, context) = loopBound.value
            if case .success(true) = result {
                handler.respond(context, head, .ok, "invalidated\n")
            } else {
                handler.respond(context, head, .serviceUnavailable, "not connected to the broker\n")
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ text: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(text.utf8.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
