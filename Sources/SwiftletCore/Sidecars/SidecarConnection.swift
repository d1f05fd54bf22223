import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SwiftletIPC

/// Why a request to a sidecar failed.
public enum SidecarRequestError: Error, CustomStringConvertible, Sendable {
    case down(String)
    case timedOut(String)
    case closed(String)
    case refused(code: UInt16, message: String)
    case unexpectedReply(IPCKind)

    public var description: String {
        switch self {
        case .down(let n): return "sidecar \(n) is not connected"
        case .timedOut(let n): return "sidecar \(n) timed out"
        case .closed(let n): return "sidecar \(n) closed the connection"
        case .refused(let code, let m): return "sidecar answered ERROR \(code): \(m)"
        case .unexpectedReply(let k): return "unexpected reply \(k)"
        }
    }
}

/// One sidecar's connection to the broker (Protocol/SPEC.md, section 4): framing with the
/// negotiated maximum, the handshake, request ids in both directions, health pings, and a
/// protocol violation closing this connection only. Confined to its channel's event loop;
/// `request` and `send` may be called from any thread.
final class SidecarConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State { case awaitingHello, welcomed, registered, closed }

    static let brokerMaxFrame: UInt32 = 16 << 20
    static let maxOutstandingFromSidecar = 1024

    let hub: SidecarHub
    let logger: Logger
    let eventLoop: EventLoop
    let peer: String
    private(set) var state = State.awaitingHello
    /// From HELLO.
    private(set) var name = ""
    private(set) var sidecarVersion = ""
    private(set) var capabilities: [IPCCapability] = []
    private(set) var acceptedHooks: [String] = []
    /// Protocols of the registered gateway capabilities (SPEC 7.2).
    private(set) var gatewayProtocols: Set<String> = []
    /// Open gateway sessions by the sidecar's id (SPEC 7); on the event loop.
    var gateways: [UInt32: GatewaySession] = [:]
    /// How many there are, for listings from any thread.
    let gatewaySessionCount = ManagedAtomic<Int>(0)
    /// The protocol version chosen in WELCOME (1 until then).
    private(set) var version: UInt16 = 1
    let connectedAt = NIODeadline.now()

    private var context: ChannelHandlerContext?
    private var decoder = IPCFrameDecoder()
    private var cumulation: ByteBuffer?
    private var nextId: UInt32 = 0
    private var outstanding: [UInt32: (promise: EventLoopPromise<IPCMessage>, timeout: Scheduled<Void>?)] = [:]
    private var requestsSinceFlush = 0
    private var needsFlush = false
    private var handshakeTimer: Scheduled<Void>?
    private var healthTask: RepeatedTask?
    private var lastPong = NIODeadline.now()
    private var closeReason = "connection closed"
    /// Hook events waiting for this sidecar (bounded; see `enqueue`).
    let hookQueue: HookQueue

    init(hub: SidecarHub, eventLoop: EventLoop, peer: String, logger: Logger) {
        self.hub = hub
        self.eventLoop = eventLoop
        self.peer = peer
        self.logger = logger
        self.hookQueue = HookQueue(capacity: hub.config.hookQueueSize)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        handshakeTimer = eventLoop.scheduleTask(in: hub.config.handshakeTimeout) { [self] in
            if state == .awaitingHello { violation("no HELLO within the handshake timeout") }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let rest = cumulation, rest.readableBytes > 0, state != .closed {
            violation("connection closed inside a frame (\(rest.readableBytes) bytes)")
        }
        shutDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        closeReason = "\(error)"
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .closed else { return }
        var bytes = unwrapInboundIn(data)
        if cumulation == nil {
            cumulation = bytes
        } else {
            cumulation!.writeBuffer(&bytes)
        }
        while state != .closed, var buf = cumulation {
            cumulation = nil
            let frame: IPCFrame?
            let start = buf.readerIndex
            do {
                frame = try decoder.decode(buffer: &buf)
            } catch IPCError.unknownKind(let k) {
                // SPEC 4: a request id on an unknown kind is answered ERROR 2 before closing.
                if let id = buf.getInteger(at: start + 5, as: UInt32.self), id != 0, state != .awaitingHello {
                    reply(.error(code: IPCErrorCode.unknownKind.rawValue, message: "unknown kind 0x\(String(k, radix: 16))"), id: id)
                }
                return violation("\(IPCError.unknownKind(k))")
            } catch {
                return violation("\(error)")
            }
            if buf.readableBytes > 0 { cumulation = buf }
            guard let frame else { break }
            handle(frame)
        }
        if let c = cumulation, c.readerIndex > 65_536 { cumulation = c.slice() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        requestsSinceFlush = 0
        flushIfNeeded()
    }

    func flushIfNeeded() {
        if needsFlush {
            needsFlush = false
            context?.flush()
        }
    }

    // MARK: Frames from the sidecar

    private func handle(_ frame: IPCFrame) {
        if frame.kind.version > version {
            // A kind of a later version than this connection's is unknown to it (SPEC 3).
            if frame.requestId != 0, state != .awaitingHello {
                reply(.error(code: IPCErrorCode.unknownKind.rawValue,
                             message: "unknown kind 0x\(String(frame.kind.rawValue, radix: 16)) in protocol version \(version)"),
                      id: frame.requestId)
            }
            return violation("\(IPCError.unknownKind(frame.kind.rawValue)) in protocol version \(version)")
        }
        let message: IPCMessage
        do {
            message = try IPCMessage.decode(frame)
        } catch {
            return violation("\(error)")
        }
        if state == .awaitingHello {
            guard case .hello(let minV, let maxV, let name, let version, let maxFrame) = message else {
                return violation("\(frame.kind) before HELLO")
            }
            return hello(id: frame.requestId, minV, maxV, name, version, maxFrame)
        }
        if frame.kind.isReply {
            guard let entry = outstanding.removeValue(forKey: frame.requestId) else {
                // A late reply to a request that timed out is discarded (SPEC 2): ids are
                // never reused while the connection lives, so only ids above `nextId` are unknown.
                if frame.requestId == 0 || frame.requestId > nextId {
                    return violation("reply \(frame.kind) to unknown request id \(frame.requestId)")
                }
                return
            }
            entry.timeout?.cancel()
            entry.promise.succeed(message)
            return
        }
        if frame.requestId != 0 {
            requestsSinceFlush += 1
            if requestsSinceFlush > Self.maxOutstandingFromSidecar {
                return violation("flood: more than \(Self.maxOutstandingFromSidecar) requests outstanding")
            }
        }
        switch message {
        case .hello:
            reply(.error(code: IPCErrorCode.wrongState.rawValue, message: "HELLO already received"), id: frame.requestId)
        case .register(let caps):
            guard state == .welcomed else {
                return reply(.error(code: IPCErrorCode.wrongState.rawValue, message: "REGISTER already received"), id: frame.requestId)
            }
            let gatewayProtocols = caps.compactMap { c -> String? in if case .gateway(let p) = c { return p } else { return nil } }
            if !gatewayProtocols.isEmpty && version < IPCVersion.gateway {
                return reply(.error(code: IPCErrorCode.unsupported.rawValue, message: "gateway capability needs protocol version 2"),
                             id: frame.requestId)
            }
            if gatewayProtocols.contains("") {
                return reply(.error(code: IPCErrorCode.malformed.rawValue, message: "gateway capability with an empty protocol"),
                             id: frame.requestId)
            }
            self.gatewayProtocols = Set(gatewayProtocols)
            capabilities = caps
            acceptedHooks = HookBus.acceptable(caps)
            state = .registered
            reply(.registered(hooks: acceptedHooks), id: frame.requestId)
            startHealthPings()
            hub.registered(self)
        case .ping:
            reply(.pong, id: frame.requestId)
        case .goodbye(let reason):
            closeReason = "goodbye: \(reason)"
            hub.saidGoodbye(self)
            context?.close(promise: nil)
        case .invalidate(let scope, let value):
            guard state == .registered else { return }
            hub.invalidate(scope: scope, value: value, from: self)
        case .gwOpen(let session, let proto, let address, let port, let listener):
            gatewayOpen(id: frame.requestId, session: session, protocol: proto, peerAddress: address, peerPort: port,
                        listener: listener)
        case .gwData(let session, let data):
            gatewayData(session: session, data: data)
        case .gwClose(let session, _):
            gatewayClose(session: session)
        default:
            // A request kind only the broker sends, or a notification in the wrong direction.
            if frame.requestId != 0 {
                reply(.error(code: IPCErrorCode.wrongState.rawValue, message: "\(frame.kind) is not accepted from a sidecar"),
                      id: frame.requestId)
            } else {
                logger.debug("ignored \(frame.kind) from sidecar", metadata: ["sidecar.name": "\(name)"])
            }
        }
    }

    private func hello(id: UInt32, _ minV: UInt16, _ maxV: UInt16, _ name: String, _ version: String, _ maxFrame: UInt32) {
        handshakeTimer?.cancel()
        // SPEC 5: the highest version both speak.
        let chosen = min(IPCVersion.current, maxV)
        guard chosen >= max(minV, IPCVersion.minimum) else {
            reply(.error(code: IPCErrorCode.versionNotSupported.rawValue,
                         message: "broker speaks versions \(IPCVersion.minimum)-\(IPCVersion.current), sidecar \(minV)-\(maxV)"), id: id)
            return violation("no common protocol version (\(minV)-\(maxV))")
        }
        self.version = chosen
        guard !name.isEmpty, name.utf8.count <= 64,
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || "-_.".unicodeScalars.contains($0)) })
        else {
            reply(.error(code: IPCErrorCode.malformed.rawValue, message: "name must be 1-64 characters of [A-Za-z0-9._-]"), id: id)
            return violation("invalid sidecar name \(name.debugDescription)")
        }
        self.name = name
        self.sidecarVersion = version
        let negotiated = max(IPCVersion.handshakeMaxFrame, min(Self.brokerMaxFrame, maxFrame))
        state = .welcomed
        reply(.welcome(version: chosen, brokerVersion: Broker.version, node: hub.nodeName,
                       maxFrame: Self.brokerMaxFrame), id: id)
        decoder.maxFrame = negotiated
        self.maxFrame = negotiated
        logger.info("sidecar connected", metadata: ["sidecar.name": "\(name)", "sidecar.version": "\(version)",
                                                     "sidecar.protocol": "\(chosen)"])
    }

    /// The negotiated maximum frame size (before the handshake, SPEC's 65,536).
    private(set) var maxFrame = IPCVersion.handshakeMaxFrame

    private func startHealthPings() {
        lastPong = .now()
        healthTask = eventLoop.scheduleRepeatedTask(initialDelay: hub.config.healthInterval,
                                                    delay: hub.config.healthInterval) { [self] _ in
            guard state == .registered else { return }
            request(.ping, timeout: hub.config.healthTimeout).whenComplete { [self] r in
                if case .failure(SidecarRequestError.timedOut) = r {
                    violation("no PONG within the health timeout")
                }
            }
        }
    }

    // MARK: Sending

    func reply(_ m: IPCMessage, id: UInt32) {
        write(m.frame(requestId: id))
    }

    private func write(_ frame: IPCFrame) {
        guard let context, state != .closed else { return }
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
            guard state == .registered || (state == .welcomed && m == .ping) else {
                return promise.fail(SidecarRequestError.down(name))
            }
            let frame = m.frame(requestId: 0)
            guard 5 + frame.body.readableBytes <= Int(maxFrame) else {
                return promise.fail(SidecarRequestError.refused(code: IPCErrorCode.unsupported.rawValue,
                                                                message: "request larger than the maximum frame"))
            }
            nextId &+= 1
            if nextId == 0 { nextId = 1 }
            let id = nextId
            let t = eventLoop.scheduleTask(in: timeout) { [self] in
                if let e = outstanding.removeValue(forKey: id) {
                    e.promise.fail(SidecarRequestError.timedOut(name))
                }
            }
            outstanding[id] = (promise, t)
            write(IPCFrame(kind: frame.kind, requestId: id, body: frame.body))
            flushIfNeeded()
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
    func close(reason: String) {
        eventLoop.execute { [self] in
            guard state != .closed, let context else { return }
            closeReason = reason
            if state == .registered {
                write(IPCMessage.goodbye(reason: reason).frame(requestId: 0))
                flushIfNeeded()
            }
            context.close(promise: nil)
        }
    }

    private func violation(_ why: String) {
        guard state != .closed else { return }
        logger.warning("sidecar protocol violation; closing its connection", metadata: [
            "sidecar.name": "\(name.isEmpty ? "(before HELLO)" : name)", "sidecar.peer": "\(peer)", "error": "\(why)"])
        closeReason = "protocol violation: \(why)"
        flushIfNeeded()
        context?.close(promise: nil)
        shutDown()
    }

    private func shutDown() {
        guard state != .closed else { return }
        let wasRegistered = state == .registered
        state = .closed
        handshakeTimer?.cancel()
        healthTask?.cancel()
        closeAllGatewaySessions()
        let pending = outstanding
        outstanding = [:]
        for (_, e) in pending {
            e.timeout?.cancel()
            e.promise.fail(SidecarRequestError.closed(name))
        }
        if !name.isEmpty {
            logger.info("sidecar disconnected", metadata: ["sidecar.name": "\(name)", "reason": "\(closeReason)"])
        }
        if wasRegistered { hub.disconnected(self, reason: closeReason) }
    }
}
