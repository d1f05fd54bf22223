import GatewayKit
import Logging
import MQTTCodec
import NIOCore

/// Where a STOMP connection's bytes go: a TCP socket, or a SockJS session. Called on the
/// connection's event loop only.
public protocol StompTransport: AnyObject {
    /// Queues one whole STOMP frame (or a heart-beat end of line) for the client.
    func write(_ bytes: ByteBuffer)
    func flush()
    /// Flushes, then closes the client's connection.
    func close()
    /// False while the client does not take what was written (above the high watermark).
    var isWritable: Bool { get }
    /// Stop (false) or resume (true) reading the client.
    func setReading(_ on: Bool)
}

/// Runs one STOMP client on its event loop: decodes its bytes, feeds `StompChannel`, carries
/// its MQTT side through a `SessionBridge` and executes the channel's actions. Shared by the
/// TCP listener and the SockJS transports. Confined to `eventLoop`: every entry point runs
/// there (the bridge's callbacks are delivered on it), hence `@unchecked Sendable`.
public final class StompConnection: @unchecked Sendable {
    public let eventLoop: any EventLoop
    private weak var transport: (any StompTransport)?
    private var machine: StompChannel
    private var decoder: StompDecoder
    private var inbound = ByteBuffer()
    private var bridge: SessionBridge?
    private let opener: any SessionOpener
    private let origin: ClientOrigin
    private let settings: StompSettings
    private let logger: Logger
    private let stats: GatewayStats
    private var timer: Scheduled<Void>?
    private var timerDeadline: UInt64?
    private var reading = true
    private var finished = false

    public init(transport: any StompTransport, eventLoop: any EventLoop, opener: any SessionOpener, origin: ClientOrigin,
                settings: StompSettings, stats: GatewayStats, logger: Logger, clientId: String) {
        self.transport = transport
        self.eventLoop = eventLoop
        self.opener = opener
        self.origin = origin
        self.settings = settings
        self.stats = stats
        self.logger = logger
        self.machine = StompChannel(config: settings.channel, clientId: clientId)
        self.decoder = StompDecoder(limits: settings.limits)
    }

    private static var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    /// The client's bytes.
    public func received(_ bytes: inout ByteBuffer) {
        guard !finished else { return }
        inbound.writeBuffer(&bytes)
        var actions: [StompChannel.Action] = []
        while !finished {
            do {
                guard let item = try decoder.decode(buffer: &inbound) else { break }
                actions = machine.receive(item, now: Self.now)
                decoder.version = machine.version
            } catch let error as StompDecodeError {
                stats.malformed()
                actions = machine.decodeFailed(error, now: Self.now)
            } catch {
                actions = machine.decodeFailed(.malformed("\(error)"), now: Self.now)
            }
            execute(actions)
        }
        inbound.discardReadBytes()
        transport?.flush()
        updateReading()
    }

    /// The client's connection is gone: the session ends (GW_CLOSE) without a DISCONNECT.
    public func transportClosed() {
        guard !finished else { return }
        finish(reason: "client closed the connection")
    }

    public func writabilityChanged() {
        guard !finished, let t = transport else { return }
        execute(machine.writabilityChanged(t.isWritable, now: Self.now))
        t.flush()
    }

    // MARK: Actions

    private func execute(_ actions: [StompChannel.Action]) {
        for action in actions {
            guard !finished else { return }
            switch action {
            case .send(let frame):
                transport?.write(frame.encoded(version: machine.version))
            case .heartbeat:
                transport?.write(ByteBuffer(integer: UInt8(10)))
            case .openSession(let connect):
                let bridge = SessionBridge(
                    opener: opener, origin: origin, eventLoop: eventLoop, logger: logger,
                    callbacks: .init(
                        onPackets: { [weak self] packets in self?.brokerPackets(packets) },
                        onClosed: { [weak self] reason in self?.brokerClosed(reason) },
                        onDrained: { [weak self] in self?.updateReading() }))
                self.bridge = bridge
                bridge.start()
                bridge.send(connect)
            case .toBroker(let packet):
                bridge?.send(packet)
            case .close(let reason):
                transport?.flush()
                transport?.close()
                finish(reason: reason)
            }
        }
        if let t = transport, !finished {
            // The client stopped taking bytes: further QoS 0 messages are dropped.
            if !t.isWritable { _ = machine.writabilityChanged(false, now: Self.now) }
        }
        schedule()
    }

    private func brokerPackets(_ packets: [Packet]) {
        guard !finished else { return }
        let before = machine.dropped
        execute(machine.brokerPackets(packets, now: Self.now))
        if machine.dropped > before { stats.drop(machine.dropped - before) }
        transport?.flush()
        updateReading()
    }

    private func brokerClosed(_ reason: String) {
        bridge = nil
        guard !finished else { return }
        execute(machine.brokerClosed(reason, now: Self.now))
        transport?.flush()
    }

    private func finish(reason: String) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        bridge?.close(reason: reason)
        stats.left()
    }

    private func updateReading() {
        guard !finished, let t = transport else { return }
        let busy = (bridge?.queuedBytes ?? 0) > settings.maxQueuedBytes || machine.brokerBacklog > Int(settings.channel.receiveMaximum) * 4
        if busy == reading {
            reading = !busy
            t.setReading(reading)
        }
    }

    private func schedule() {
        guard !finished, let deadline = machine.nextDeadline else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        if timerDeadline == deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(deadline)) { [weak self] in
            guard let self else { return }
            self.timerDeadline = nil
            self.execute(self.machine.tick(now: Self.now))
            self.transport?.flush()
        }
    }
}
