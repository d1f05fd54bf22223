import SwiftletConfig
import MQTTCodec
import NIOCore
import NIOPosix
import NIOSSL

public enum Listeners {
    /// Binds one listener and returns its server channel. TLS files are loaded first: a
    /// missing, unreadable or mismatched file stops the start with the key named.
    static func bind(_ state: ListenerState, broker: Broker) async throws -> Channel {
        let l = state.config
        if l.isTLS { try state.loadTLS() }
        let wantsCert = l.isTLS && l.verify != .none
        let wantsPeer = wantsCert || l.proxyProtocol || l.proxyAddressHeader != nil
        // Accepted on a loop of its own, served on the broker's loops: a channel's NIO objects
        // are then allocated apart from the connection's long-lived state, and a parked
        // connection's channel frees whole pages (docs/decisions/0009).
        let bootstrap = ServerBootstrap(group: broker.acceptGroup ?? broker.group, childGroup: broker.group)
            .serverChannelOption(ChannelOptions.backlog, value: Int32(clamping: l.backlog))
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Accepted sockets inherit TCP_NODELAY from the listening socket (Linux and the
            // BSDs copy it into each child), so it is set once here rather than per connection:
            // NIO's per-channel setOption cost a setsockopt, a getsockname and its option
            // dispatch on every CONNECT. ServerBootstrap sets this by default; we depend on it.
            .serverChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .serverChannelInitializer { server in
                server.eventLoop.makeCompletedFuture {
                    try server.pipeline.syncOperations.addHandler(AcceptGate(listener: state, now: server.eventLoop.now))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try setChildOptions(channel)
                    let sync = channel.pipeline.syncOperations
                    let peer = wantsPeer ? ConnectionPeer(asUsername: l.peerCertAsUsername, asClientId: l.peerCertAsClientId) : nil
                    if l.proxyProtocol, let peer {
                        // Before TLS: the load balancer's header is plain text ahead of the ClientHello.
                        try sync.addHandler(ProxyProtocolHandler(peer: peer, listener: state))
                    }
                    if let tls = state.currentTLS {
                        try sync.addHandler(NIOSSLServerHandler(context: tls.context))
                        // One TLS record per flush, not one per MQTT packet (see the type).
                        try sync.addHandler(TLSRecordCoalescer())
                        if wantsCert, let peer {
                            try sync.addHandler(PeerCertificateHandler(peer: peer, revocations: tls.revocations, listener: state))
                        }
                    }
                    switch l.kind {
                    case .tcp, .tls:
                        try addMQTTHandlers(channel: channel, broker: broker, listener: state, connectionPeer: peer)
                    case .ws, .wss:
                        try WebSocketListener.addUpgrade(channel: channel, broker: broker, listener: state, connectionPeer: peer)
                    }
                }
            }
        return try await bootstrap.bind(host: l.host, port: l.port).get()
    }

    /// A connection's channel options (TCP_NODELAY it inherits from the listening socket), set
    /// synchronously in the initializer (which runs before the channel is registered, as
    /// `childChannelOption`s are applied). `childChannelOption` applied each option through a
    /// promise and a future chain per accepted connection, about 5 % of the broker's CPU per
    /// CONNECT.
    static func setChildOptions(_ channel: Channel) throws {
        guard let options = channel.syncOptions else {
            throw ChannelError.operationUnsupported  // an accepted socket always has them
        }
        try options.setOption(ChannelOptions.maxMessagesPerRead, value: 16)
        // Each channel keeps its last receive buffer: start it small (see the type).
        try options.setOption(ChannelOptions.recvAllocator, value: CompactRecvAllocator())
        try options.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
    }

    /// The MQTT pipeline: decoder and connection handler. `peerHost`/`peerPort` default to the
    /// socket's remote address (a gateway session passes the address its sidecar named).
    static func addMQTTHandlers(channel: Channel, broker: Broker, listener: ListenerState,
                                connectionPeer: ConnectionPeer? = nil, peerHost: String? = nil, peerPort: Int? = nil) throws {
        let ctx = broker.loopContext(for: channel.eventLoop)
        let peer = peerHost == nil ? channel.remoteAddress : nil
        let handler = MQTTConnectionHandler(broker: broker, ctx: ctx,
                                            peerHost: peerHost ?? peer?.hostText ?? MQTTConnectionHandler.unknownHost,
                                            peerPort: peerPort ?? peer?.port ?? 0, listener: listener)
        handler.connectionPeer = connectionPeer
        try channel.pipeline.syncOperations.addHandler(handler)
    }
}
