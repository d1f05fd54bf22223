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
            // TCP_NODELAY on the listening socket: accepted sockets inherit it, as the broker's
            // listeners do (a childChannelOption is a setsockopt and a future per connection).
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        if let high = writeHighWater {
                            try ch.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: high / 2, high: high))
                        }
                        try initializer(ch)
                    }
                }
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
