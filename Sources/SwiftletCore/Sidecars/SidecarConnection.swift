import SidecarLinkKit
import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SwiftletIPC

/// One sidecar's connection to the broker (Protocol/SPEC.md, section 4): the channel handler
/// that executes what its `SidecarLink` decides (framing, handshake, request ids, health
/// pings, violations) and carries the gateway sessions. Confined to its channel's event loop;
/// `request`, `close` and the values set at HELLO and REGISTER may be used from any thread.
final class SidecarConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias Link = SidecarLink<EventLoopPromise<IPCMessage>>
    typealias State = Link.State

    let hub: SidecarHub
    let logger: Logger
    let eventLoop: EventLoop
    let peer: String
    /// The peer's process id (SO_PEERCRED), set on the loop before HELLO is read; 0 unknown.
    var peerPid: Int32 {
        get { peerPidValue.load(ordering: .relaxed) }
        set { peerPidValue.store(newValue, ordering: .relaxed) }
    }
    private let peerPidValue = ManagedAtomic<Int32>(0)
    /// Set once at HELLO and REGISTER (on the loop, before the hub publishes the connection).
    private(set) var name = ""
    private(set) var sidecarVersion = ""
    private(set) var capabilities: [IPCCapability] = []
    private(set) var acceptedHooks: [String] = []
    /// Protocols of the registered gateway capabilities (SPEC 7.2).
    private(set) var gatewayProtocols: Set<String> = []
    /// The protocol version chosen in WELCOME (1 until then).
    private(set) var version: UInt16 = 1
    /// The negotiated maximum frame size (before the handshake, SPEC's 65,536).
    private(set) var maxFrame = IPCVersion.handshakeMaxFrame
    /// Open gateway sessions by the sidecar's id (SPEC 7); on the event loop.
    var gateways: [UInt32: GatewaySession] = [:]
    /// How many there are, for listings from any thread.
    let gatewaySessionCount = ManagedAtomic<Int>(0)
    /// Hook events waiting for this sidecar (bounded; see `enqueue`).
    let hookQueue: HookQueue

    private var link: Link
    private var context: ChannelHandlerContext?
    private var needsFlush = false
    /// The one timer, at the link's earliest deadline.
    private var timer: Scheduled<Void>?
    private var timerDeadline = UInt64.max

    var state: State { link.state }
    /// Requests waiting for their reply (on the loop).
    var outstanding: Int { link.outstanding }

    init(hub: SidecarHub, eventLoop: EventLoop, peer: String, logger: Logger) {
        self.hub = hub
        self.eventLoop = eventLoop
        self.peer = peer
        self.logger = logger
        self.hookQueue = HookQueue(capacity: hub.config.hookQueueSize)
        let c = hub.config
        link = Link(settings: .init(handshakeTimeout: Self.nanoseconds(c.handshakeTimeout),
                                    healthInterval: Self.nanoseconds(c.healthInterval),
                                    healthTimeout: Self.nanoseconds(c.healthTimeout),
                                    brokerVersion: Broker.version, node: hub.nodeName),
                    now: Self.now())
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
    static func nanoseconds(_ t: TimeAmount) -> UInt64 { UInt64(max(0, t.nanoseconds)) }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armTimer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        execute(link.channelClosed())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        execute(link.failed("\(error)"))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.read(unwrapInboundIn(data))
        let now = Self.now()
        while let actions = link.next(now: now) { execute(actions) }
        armTimer()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        link.readComplete()
        flushIfNeeded()
    }

    func flushIfNeeded() {
        if needsFlush {
            needsFlush = false
            context?.flush()
        }
    }

    // MARK: Executing the link's actions

    private func execute(_ actions: [Link.Action]) {
        for a in actions { execute(a) }
    }

    private func execute(_ action: Link.Action) {
        switch action {
        case .send(let frame):
            // Not `write`: the link may already be closed by the violation this frame precedes.
            encode(frame)
        case .flush:
            flushIfNeeded()
        case .complete(let promise, let reply):
            promise.succeed(reply)
        case .fail(let promise, let error):
            promise.fail(error)
        case .welcomed:
            name = link.name
            sidecarVersion = link.sidecarVersion
            version = link.version
            maxFrame = link.maxFrame
            logger.info("sidecar connected", metadata: ["sidecar.name": "\(name)", "sidecar.version": "\(sidecarVersion)",
                                                         "sidecar.protocol": "\(version)"])
        case .registered:
            capabilities = link.capabilities
            acceptedHooks = link.acceptedHooks
            gatewayProtocols = link.gatewayProtocols
            hub.registered(self)
        case .invalidate(let scope, let value):
            hub.invalidate(scope: scope, value: value, from: self)
        case .saidGoodbye:
            hub.saidGoodbye(self)
        case .gatewayOpen(let id, let session, let proto, let address, let port, let listener):
            gatewayOpen(id: id, session: session, protocol: proto, peerAddress: address, peerPort: port, listener: listener)
        case .gatewayData(let session, let data):
            gatewayData(session: session, data: data)
        case .gatewayClose(let session):
            gatewayClose(session: session)
        case .ignored(let kind):
            logger.debug("ignored \(kind) from sidecar", metadata: ["sidecar.name": "\(name)"])
        case .violation(let reason):
            logger.warning("sidecar protocol violation; closing its connection", metadata: [
                "sidecar.name": "\(name.isEmpty ? "(before HELLO)" : name)", "sidecar.peer": "\(peer)",
                "error": "\(reason.violation ?? reason.description)"])
        case .closeChannel:
            context?.close(promise: nil)
        case .ended(let reason, let wasRegistered):
            timer?.cancel()
            timer = nil
            closeAllGatewaySessions()
            if !name.isEmpty {
                logger.info("sidecar disconnected", metadata: ["sidecar.name": "\(name)", "reason": "\(reason)"])
            }
            if wasRegistered { hub.disconnected(self, reason: reason) }
        }
    }

    /// One timer at the link's earliest deadline (handshake, a request's timeout, the next
    /// health ping); moved earlier when a nearer deadline appears.
    private func armTimer() {
        guard let d = link.nextDeadline() else { return }
        if timer != nil, d >= timerDeadline { return }
        timer?.cancel()
        timerDeadline = d
        timer = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(d)) { [self] in
            timer = nil
            timerDeadline = .max
            execute(link.tick(now: Self.now()))
            armTimer()
        }
    }

    // MARK: Sending

    func reply(_ m: IPCMessage, id: UInt32) {
        write(m.frame(requestId: id))
    }

    private func write(_ frame: IPCFrame) {
        guard state != .closed else { return }
        encode(frame)
    }

    private func encode(_ frame: IPCFrame) {
        guard let context else { return }
        var out = context.channel.allocator.buffer(capacity: 9 + frame.body.readableBytes)
        frame.encode(into: &out)
        context.write(wrapOutboundOut(out), promise: nil)
        needsFlush = true
    }

    /// Sends a notification on the loop, writable or not (gateway frames are bounded by the
    /// sessions' backpressure instead).
    func notify(_ m: IPCMessage) { write(m.frame(requestId: 0)) }

    func markNeedsFlush() { needsFlush = true }

    var channelContext: ChannelHandlerContext? { context }

    /// Sends a request and completes with the reply (ERROR replies fail it). Any thread.
    func request(_ m: IPCMessage, timeout: TimeAmount) -> EventLoopFuture<IPCMessage> {
        let promise = eventLoop.makePromise(of: IPCMessage.self)
        eventLoop.execute { [self] in
            execute(link.request(m, timeout: Self.nanoseconds(timeout), waiter: promise, now: Self.now()))
            armTimer()
        }
        return promise.futureResult.flatMapThrowing { reply in
            if case .error(let code, let message) = reply { throw SidecarRequestError.refused(code: code, message: message) }
            return reply
        }
    }

    /// Sends a notification (HOOK_EVENTS, GOODBYE) on the loop; false when not writable.
    func notifyOnLoop(_ m: IPCMessage) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard state == .registered, let context, context.channel.isWritable else { return false }
        write(m.frame(requestId: 0))
        flushIfNeeded()
        return true
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { hub.hooks.drain(self) }
        if !gateways.isEmpty { gatewayWritabilityChanged(writable: context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    /// Ends the connection (GOODBYE first when it is serving). Any thread.
    func close(_ reason: SidecarCloseReason) {
        eventLoop.execute { [self] in
            guard context != nil else { return }
            execute(link.close(reason))
        }
    }
}
