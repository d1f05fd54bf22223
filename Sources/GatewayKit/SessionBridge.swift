import Logging
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import SidecarKit

/// Opens gateway sessions: the `Sidecar` itself, or a test double.
public protocol SessionOpener: Sendable {
    func openSession(protocol name: String, peerAddress: String, peerPort: UInt16,
                     listener: String) async throws -> GatewaySession
}

extension Sidecar: SessionOpener {}

/// Where a gateway client came from, as the broker shows it (`swiftlet-ctl clients list`).
public struct ClientOrigin: Sendable {
    public var protocolName: String
    public var peerAddress: String
    public var peerPort: UInt16
    public var listener: String

    public init(protocolName: String, peerAddress: String, peerPort: UInt16, listener: String) {
        self.protocolName = protocolName
        self.peerAddress = peerAddress
        self.peerPort = peerPort
        self.listener = listener
    }
}

/// One client's gateway session, seen from the client's event loop: `send` MQTT packets
/// (encoded at once, coalesced, and written by one writer in order), get the broker's packets
/// back through `onPackets`, and `onClosed` once when the session is over. Every callback
/// runs on `eventLoop`. `queuedBytes` is what the client sent and the broker has not taken
/// yet: the client's handler stops reading its socket while it is above its limit and reads
/// again on `onDrained`.
public final class SessionBridge: Sendable {
    public struct Callbacks: Sendable {
        public var onPackets: @Sendable ([Packet]) -> Void
        public var onClosed: @Sendable (String) -> Void
        public var onDrained: @Sendable () -> Void

        public init(onPackets: @escaping @Sendable ([Packet]) -> Void, onClosed: @escaping @Sendable (String) -> Void,
                    onDrained: @escaping @Sendable () -> Void) {
            self.onPackets = onPackets
            self.onClosed = onClosed
            self.onDrained = onDrained
        }
    }

    private struct State {
        var pending = ByteBuffer()
        var wake: CheckedContinuation<Void, Never>?
        var closeReason: String?
        var closedNotified = false
        var writer: Task<Void, Never>?
        var reader: Task<Void, Never>?
    }

    public let eventLoop: any EventLoop
    private let origin: ClientOrigin
    private let opener: any SessionOpener
    private let callbacks: Callbacks
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    /// Largest MQTT packet accepted from the broker (the session is closed on a larger one).
    private let maxPacketSize: Int

    public init(opener: any SessionOpener, origin: ClientOrigin, eventLoop: any EventLoop, logger: Logger,
                maxPacketSize: Int = 16 << 20, callbacks: Callbacks) {
        self.opener = opener
        self.origin = origin
        self.eventLoop = eventLoop
        self.logger = logger
        self.maxPacketSize = maxPacketSize
        self.callbacks = callbacks
    }

    /// Bytes handed to `send` that the writer has not written to the broker yet.
    public var queuedBytes: Int { state.withLockedValue { $0.pending.readableBytes } }

    /// Opens the session; packets sent before it is open wait (the first must be CONNECT).
    public func start() {
        let task = Task { await self.run() }
        state.withLockedValue { $0.writer = task }
    }

    public func send(_ packet: Packet) {
        let wake = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            guard s.closeReason == nil else { return nil }
            packet.encode(into: &s.pending, version: .v5)
            defer { s.wake = nil }
            return s.wake
        }
        wake?.resume()
    }

    /// Ends the session once what was sent before is written (GW_CLOSE). `onClosed` follows.
    public func close(reason: String) {
        let wake = state.withLockedValue { s -> CheckedContinuation<Void, Never>? in
            if s.closeReason == nil { s.closeReason = reason }
            defer { s.wake = nil }
            return s.wake
        }
        wake?.resume()
    }

    // MARK: Tasks

    private func run() async {
        let session: GatewaySession
        do {
            session = try await opener.openSession(protocol: origin.protocolName, peerAddress: origin.peerAddress,
                                                   peerPort: origin.peerPort, listener: origin.listener)
        } catch {
            logger.info("gateway session not opened: \(error)", metadata: ["gateway.peer": "\(origin.peerAddress)"])
            return notifyClosed("broker unavailable: \(error)")
        }
        let reader = Task { await self.read(session) }
        state.withLockedValue { $0.reader = reader }
        while true {
            let (batch, closing) = await nextBatch()
            if batch.readableBytes > 0 {
                do {
                    try await session.send(batch)
                } catch {
                    await session.close(reason: "send failed")
                    return notifyClosed("\(error)")
                }
                eventLoop.execute { self.callbacks.onDrained() }
            }
            if let closing, queuedBytes == 0 {
                await session.close(reason: closing)
                // The broker confirms with GW_CLOSE (onClose); a lost connection confirms too.
                return
            }
        }
    }

    private func nextBatch() async -> (ByteBuffer, String?) {
        while true {
            let taken = state.withLockedValue { s -> (ByteBuffer, String?)? in
                if s.pending.readableBytes > 0 {
                    let b = s.pending
                    s.pending = ByteBuffer()
                    return (b, s.closeReason)
                }
                if let r = s.closeReason { return (ByteBuffer(), r) }
                return nil
            }
            if let taken { return taken }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLockedValue { s -> Bool in
                    if s.pending.readableBytes > 0 || s.closeReason != nil { return true }
                    s.wake = c
                    return false
                }
                if ready { c.resume() }
            }
        }
    }

    /// Hands the broker's packets over in order; `onClosed` follows the last of them (the
    /// session's stream finishes when the broker's GW_CLOSE came, or the connection was lost).
    private func read(_ session: GatewaySession) async {
        defer { notifyClosed(session.closeReason ?? state.withLockedValue { $0.closeReason } ?? "closed") }
        var decoder = MQTTDecoder(version: .v5, maxPacketSize: maxPacketSize, strictUTF8: false)
        var buffer = ByteBuffer()
        for await chunk in session.inbound {
            var c = chunk
            buffer.writeBuffer(&c)
            var packets: [Packet] = []
            do {
                while let p = try decoder.decode(buffer: &buffer) { packets.append(p) }
            } catch {
                logger.error("the broker's MQTT stream is malformed: \(error)")
                close(reason: "malformed MQTT from the broker")
                return
            }
            buffer.discardReadBytes()
            if !packets.isEmpty {
                eventLoop.execute { self.callbacks.onPackets(packets) }
            }
        }
    }

    private func notifyClosed(_ reason: String) {
        let (first, wake) = state.withLockedValue { s -> (Bool, CheckedContinuation<Void, Never>?) in
            defer {
                s.closedNotified = true
                if s.closeReason == nil { s.closeReason = reason }
                s.wake = nil
            }
            return (!s.closedNotified, s.wake)
        }
        wake?.resume()
        guard first else { return }
        eventLoop.execute { self.callbacks.onClosed(reason) }
    }
}
