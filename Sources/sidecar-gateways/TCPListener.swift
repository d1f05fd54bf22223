import GatewayKit
import Logging
import NIOCore
import NIOPosix

/// A TCP listener on event loops of its own (the STOMP and SockJS gateways): bound at start,
/// closed with its loops at stop.
final class TCPListener {
    let group: MultiThreadedEventLoopGroup
    let channel: Channel

    private init(group: MultiThreadedEventLoopGroup, channel: Channel) {
        self.group = group
        self.channel = channel
    }

    /// Serves on `group`, which it owns from now on (shut down at stop, or when the bind
    /// fails). `initializer` sets up each accepted connection's pipeline (on its loop);
    /// `writeHighWater` makes a connection unwritable above that many queued bytes.
    static func start(_ name: String, address: ListenAddress, group: MultiThreadedEventLoopGroup, writeHighWater: Int? = nil,
                      logger: Logger, initializer: @escaping @Sendable (Channel) throws -> Void) async throws -> TCPListener {
        do {
            var bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            if let high = writeHighWater {
                bootstrap = bootstrap.childChannelOption(.writeBufferWaterMark, value: .init(low: high / 2, high: high))
            }
            let channel = try await bootstrap
                .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try initializer(ch) } }
                .bind(host: address.host, port: address.port).get()
            logger.info("\(name) listening", metadata: ["gateway.listener": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            return TCPListener(group: group, channel: channel)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}
