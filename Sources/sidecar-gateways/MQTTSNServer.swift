import GatewayKit
import GatewayMQTTSN
import Logging
import MQTTCodec
import NIOCore
import NIOPosix

/// The MQTT-SN gateway (`[mqttsn]`, UDP 1884): one datagram channel on one event loop, one
/// `SNChannel` and broker session per client address, SEARCHGW/ADVERTISE/QoS -1 handled here.
final class MQTTSNServer {
    let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    static func start(settings: SNSettings, opener: any SessionOpener, stats: GatewayStats, logger: Logger,
                      group: any EventLoopGroup) async throws -> MQTTSNServer {
        let listener = "mqtt-sn:udp:\(settings.listener)"
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_broadcast), value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(
                        MQTTSNHandler(settings: settings, opener: opener, stats: stats, logger: logger, listener: listener))
                }
            }
            .bind(host: settings.listener.host, port: settings.listener.port).get()
        logger.info("MQTT-SN listening", metadata: ["gateway.listener": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return MQTTSNServer(channel: channel)
    }

    func stop() async {
        try? await channel.close()
    }
}

final class MQTTSNHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    final class Client {
        var machine: SNChannel
        var bridge: SessionBridge?
        /// Which session the callbacks are of: a reconnect opens another, the old one's are stale.
        var generation = 0
        init(machine: SNChannel) { self.machine = machine }
    }

    private let settings: SNSettings
    private let opener: any SessionOpener
    private let stats: GatewayStats
    private let logger: Logger
    private let listener: String
    private var context: ChannelHandlerContext?
    private var clients: [SocketAddress: Client] = [:]
    private var limiter: RateLimiter
    private var qos3: SessionBridge?
    private var qos3Client = BrokerClient()
    private var qos3Generation = 0
    private var ticker: RepeatedTask?
    private var advertiser: RepeatedTask?

    init(settings: SNSettings, opener: any SessionOpener, stats: GatewayStats, logger: Logger, listener: String) {
        self.settings = settings
        self.opener = opener
        self.stats = stats
        self.logger = logger
        self.listener = listener
        self.limiter = RateLimiter(rate: settings.rateLimit)
    }

    private static var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [weak self] _ in
            self?.tick()
        }
        if settings.advertiseInterval > 0,
           let target = try? SocketAddress.makeAddressResolvingHost(settings.advertiseAddress.host, port: settings.advertiseAddress.port) {
            let message = SNMessage.advertise(gatewayId: settings.channel.gatewayId, duration: UInt16(settings.advertiseInterval))
            advertiser = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(Int64(settings.advertiseInterval))) {
                [weak self] _ in
                self?.write(message, to: target)
                self?.context?.flush()
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        ticker?.cancel()
        advertiser?.cancel()
        for (_, c) in clients { c.bridge?.close(reason: "gateway stopping") }
        clients = [:]
        qos3?.close(reason: "gateway stopping")
        self.context = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let from = envelope.remoteAddress
        let now = Self.now
        guard limiter.allow(from.ipAddress ?? "?", now: now) else {
            stats.drop()
            return
        }
        let message: SNMessage
        do {
            message = try SNMessage.decode(envelope.data)
        } catch {
            stats.malformed()
            logger.debug("datagram dropped: \(error)", metadata: ["gateway.peer": "\(from)"])
            return
        }
        switch message {
        case .searchGateway:
            write(.gatewayInfo(gatewayId: settings.channel.gatewayId, address: []), to: from)
        case .publish(let flags, let topicId, _, let data) where flags.qos == -1:
            publishQoS3(flags, topicId, data)
        case .advertise, .gatewayInfo:
            break  // another gateway's; this one forwards nothing
        default:
            if let client = clients[from] {
                execute(client.machine.receive(message, now: now), for: client, at: from)
            } else if case .connect = message {
                guard clients.count < settings.maxClients else {
                    stats.refuse()
                    write(.connack(.congestion), to: from)
                    break
                }
                stats.join()
                let client = Client(machine: SNChannel(config: settings.channel))
                clients[from] = client
                execute(client.machine.receive(message, now: now), for: client, at: from)
            } else {
                // No state for this address and not a CONNECT: dropped (no answer to spoofable sources).
                stats.malformed()
            }
        }
        context.flush()
    }

    // MARK: Actions

    private func execute(_ actions: [SNChannel.Action], for client: Client, at address: SocketAddress) {
        for action in actions {
            switch action {
            case .send(let m):
                write(m, to: address)
            case .openSession(let connect):
                client.bridge?.close(reason: "reconnected")
                let origin = ClientOrigin(protocolName: "mqtt-sn", peerAddress: address.ipAddress ?? "",
                                          peerPort: UInt16(address.port ?? 0), listener: listener)
                let loop = context!.eventLoop
                client.generation += 1
                let gen = client.generation
                let bridge = SessionBridge(
                    opener: opener, origin: origin, eventLoop: loop, logger: logger,
                    callbacks: .init(
                        onPackets: { [weak self, weak client] packets in
                            guard let self, let client, client.generation == gen, client.bridge != nil else { return }
                            let before = client.machine.dropped
                            self.execute(client.machine.brokerPackets(packets, now: Self.now), for: client, at: address)
                            if client.machine.dropped > before { self.stats.drop(client.machine.dropped - before) }
                            self.context?.flush()
                        },
                        onClosed: { [weak self, weak client] reason in
                            guard let self, let client, client.generation == gen, client.bridge != nil else { return }
                            client.bridge = nil
                            self.execute(client.machine.brokerClosed(reason, now: Self.now), for: client, at: address)
                            self.context?.flush()
                        },
                        onDrained: {}))
                client.bridge = bridge
                bridge.start()
                bridge.send(connect)
            case .toBroker(let p):
                client.bridge?.send(p)
            case .closeSession(let reason):
                client.bridge?.close(reason: reason)
                client.bridge = nil
            case .forget(let reason):
                client.bridge?.close(reason: reason)
                client.bridge = nil
                if clients[address] === client {
                    clients[address] = nil
                    stats.left()
                }
                logger.debug("MQTT-SN client gone: \(reason)", metadata: ["gateway.peer": "\(address)"])
            }
        }
    }

    private func write(_ message: SNMessage, to address: SocketAddress) {
        context?.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: message.encoded())), promise: nil)
    }

    private func tick() {
        let now = Self.now
        for (address, client) in clients {
            guard let d = client.machine.nextDeadline, now >= d else { continue }
            let before = client.machine.dropped
            execute(client.machine.tick(now: now), for: client, at: address)
            if client.machine.dropped > before { stats.drop(client.machine.dropped - before) }
        }
        context?.flush()
    }

    /// QoS -1 (6.8): one shared session of the gateway publishes them at QoS 0.
    private func publishQoS3(_ flags: SNFlags, _ topicId: UInt16, _ data: ByteBuffer) {
        guard settings.enableQoS3, let topic = SNQoS3.topic(flags, topicId, predefined: settings.channel.predefined) else {
            stats.malformed()
            return
        }
        if qos3 == nil {
            let loop = context!.eventLoop
            qos3Generation += 1
            let gen = qos3Generation
            let bridge = SessionBridge(
                opener: opener,
                origin: ClientOrigin(protocolName: "mqtt-sn", peerAddress: "", peerPort: 0, listener: listener),
                eventLoop: loop, logger: logger,
                callbacks: .init(onPackets: { [weak self] packets in
                    guard let self, self.qos3Generation == gen else { return }
                    for p in packets { _ = self.qos3Client.receive(p) }
                }, onClosed: { [weak self] _ in
                    guard let self, self.qos3Generation == gen else { return }
                    self.qos3 = nil
                }, onDrained: {}))
            qos3 = bridge
            qos3Client = BrokerClient()
            bridge.start()
            bridge.send(BrokerClient.connect(clientId: "mqttsn-qos3-\(settings.channel.gatewayId)", username: settings.channel.username,
                                             password: settings.channel.password.map { Array($0.utf8) }, keepAlive: 0,
                                             receiveMaximum: 16))
        }
        if let p = qos3Client.publish(topic: topic, payload: data, qos: .atMostOnce, retain: flags.retain) {
            qos3?.send(p)
        }
    }
}
