import GatewayKit
import GatewaySTOMP
import Logging
import NIOCore
import NIOPosix

/// The STOMP listener (`[stomp]`, port 61613): one `StompConnection` per TCP connection.
enum StompServer {
    static func start(settings: StompSettings, opener: any SessionOpener, stats: GatewayStats,
                      logger: Logger) async throws -> TCPListener {
        let listener = "stomp:tcp:\(settings.listener)"
        return try await TCPListener.start("STOMP", address: settings.listener,
                                           group: MultiThreadedEventLoopGroup(numberOfThreads: settings.acceptors),
                                           writeHighWater: settings.maxOutboundBytes, logger: logger) { ch in
            try ch.pipeline.syncOperations.addHandler(
                StompTCPHandler(settings: settings, opener: opener, stats: stats, logger: logger, listener: listener))
        }
    }
}

/// One TCP client: bytes to its `StompConnection`, frames back; reads stop while the
/// connection says so (its broker side is behind).
final class StompTCPHandler: ChannelDuplexHandler, StompTransport {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let settings: StompSettings
    private let opener: any SessionOpener
    private let stats: GatewayStats
    private let logger: Logger
    private let listener: String
    private var context: ChannelHandlerContext?
    private var connection: StompConnection?
    private var gate = ReadGate()

    init(settings: StompSettings, opener: any SessionOpener, stats: GatewayStats, logger: Logger, listener: String) {
        self.settings = settings
        self.opener = opener
        self.stats = stats
        self.logger = logger
        self.listener = listener
    }

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        guard stats.admit(limit: settings.maxClients) else {
            let error = StompFrame("ERROR", [("message", "too many clients"), ("content-type", "text/plain")])
            context.writeAndFlush(wrapOutboundOut(error.encoded(version: .v1_0))).whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        let peer = context.remoteAddress
        let origin = ClientOrigin(protocolName: "stomp", peerAddress: peer?.ipAddress ?? "", peerPort: UInt16(peer?.port ?? 0),
                                  listener: listener)
        connection = StompConnection(transport: self, eventLoop: context.eventLoop, opener: opener, origin: origin,
                                     settings: settings, stats: stats, logger: logger, clientId: newClientId(prefix: "stomp"))
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        connection?.received(&bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection?.transportClosed()
        connection = nil
        self.context = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        gate.read(context)
    }

    // MARK: StompTransport

    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() { context?.flush() }

    func close() {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in context.close(promise: nil) }
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func setReading(_ on: Bool) {
        gate.set(on, context)
    }
}
