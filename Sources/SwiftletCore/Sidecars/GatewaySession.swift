import Atomics
import NIOCore

/// One gateway session (Protocol/SPEC.md, section 7): an ordinary MQTT connection whose
/// bytes travel in GW_DATA frames on the sidecar connection that opened it, instead of a
/// socket. It costs the broker no file descriptor; `[sidecars] max_gateway_sessions` bounds
/// them per sidecar.
///
/// Two event loops meet here: the sidecar connection's (`owner`; frames in and out, the
/// session table) and the MQTT connection's (a loop of the broker's group chosen round
/// robin, as for a TCP client, so gateway clients spread over every core). Bytes hop between
/// them in order with `execute`; the flags both sides read are atomics.
final class GatewaySession: MQTTTransport, @unchecked Sendable {
    /// More GW_DATA bytes than this not yet processed by the MQTT connection close the
    /// session with "overflow" (SPEC 7.4).
    static let bufferLimit = 1 << 20

    let id: UInt32
    unowned let owner: SidecarConnection
    let connection: MQTTConnectionHandler
    private var connectionLoop: EventLoop { connection.eventLoop }

    /// Set on the owner's loop when the session ended (either side); read on both.
    private let ended = ManagedAtomic(false)
    /// The sidecar connection is writable: the MQTT connection may write (SPEC 7.4).
    private let ownerWritable = ManagedAtomic(true)
    /// Bytes handed to the MQTT connection and not yet processed by it.
    private let unconsumed = ManagedAtomic(0)
    /// Bytes the MQTT connection wrote since its last flush (its loop only).
    private var outgoing: [ByteBuffer] = []

    init(id: UInt32, owner: SidecarConnection, connection: MQTTConnectionHandler) {
        self.id = id
        self.owner = owner
        self.connection = connection
    }

    var isEnded: Bool { ended.load(ordering: .relaxed) }

    // MARK: From the sidecar (owner's loop)

    /// Starts the MQTT connection on its loop.
    func start() {
        connectionLoop.execute { [self] in connection.start(transport: self) }
    }

    /// Hands GW_DATA bytes to the MQTT connection. False when more than `bufferLimit` bytes
    /// would be waiting (the caller ends the session).
    func deliver(_ data: ByteBuffer) -> Bool {
        let n = data.readableBytes
        guard n > 0 else { return true }
        if unconsumed.wrappingIncrementThenLoad(by: n, ordering: .relaxed) > Self.bufferLimit { return false }
        connectionLoop.execute { [self] in
            connection.receive(data)
            connection.readComplete()
            unconsumed.wrappingDecrement(by: n, ordering: .relaxed)
        }
        return true
    }

    /// The sidecar closed the session, or its connection ended: after the bytes already
    /// delivered, the MQTT connection sees its peer go away (a will fires, a persistent
    /// session stays).
    func peerClosed() {
        ended.store(true, ordering: .relaxed)
        connectionLoop.execute { [self] in
            connection.connectionLost()
            connection.transport = nil
        }
    }

    func ownerWritabilityChanged(_ writable: Bool) {
        ownerWritable.store(writable, ordering: .relaxed)
        connectionLoop.execute { [self] in connection.writabilityChanged() }
    }

    // MARK: MQTTTransport (the MQTT connection's loop)

    var transportAllocator: ByteBufferAllocator { ByteBufferAllocator() }
    var transportIsWritable: Bool { !isEnded && ownerWritable.load(ordering: .relaxed) }
    var transportIsActive: Bool { !isEnded }
    var transportRemoteAddress: SocketAddress? { nil }

    func transportWrite(_ bytes: ByteBuffer) {
        guard !isEnded else { return }
        outgoing.append(bytes)
    }

    func transportFlush() {
        guard !outgoing.isEmpty else { return }
        let batch = outgoing
        outgoing = []
        onOwnerLoop { [self] in owner.gatewayOutbound(self, batch) }
    }

    func transportClose(promise: EventLoopPromise<Void>?) {
        transportFlush()
        // The MQTT connection ended: the sidecar is told (GW_CLOSE), then the connection
        // runs its end as a socket's would at channelInactive.
        onOwnerLoop { [self] in owner.gatewayEnded(self) }
        connectionLoop.execute { [self] in
            connection.connectionLost()
            connection.transport = nil
            promise?.succeed(())
        }
    }

    /// No socket to drain: the DISCONNECT is sent, then the session ends; the sidecar's own
    /// client connection does the lingering.
    func transportCloseAfterLinger(_ linger: TimeAmount) {
        transportClose(promise: nil)
    }

    private func onOwnerLoop(_ body: @escaping @Sendable () -> Void) {
        if owner.eventLoop.inEventLoop { body() } else { owner.eventLoop.execute(body) }
    }
}
