import NIOCore
import SwiftletIPC

/// The broker's side of one sidecar connection as a state machine (Protocol/SPEC.md, sections
/// 2-5 and 7): bytes and events in, actions out. It frames with the negotiated maximum, runs
/// the handshake, matches replies to the broker's requests (one `PendingRequests` table),
/// pings for health, counts a flood and turns every violation into a typed close reason. It
/// does no I/O and reads no clock: time comes in as monotonic nanoseconds, and
/// `SidecarConnection` executes the actions. `Waiter` is whatever a request's caller waits on
/// (a promise in the broker, a number in tests).
public struct SidecarLink<Waiter> {
    public enum State: Equatable { case awaitingHello, welcomed, registered, closed }

    public struct Settings {
        public var brokerMaxFrame: UInt32 = 16 << 20
        public var maxOutstandingFromSidecar = 1024
        /// Nanoseconds.
        public var handshakeTimeout: UInt64 = 5_000_000_000
        public var healthInterval: UInt64 = 5_000_000_000
        public var healthTimeout: UInt64 = 10_000_000_000
        /// For WELCOME.
        public var brokerVersion: String
        public var node: String

        public init(brokerMaxFrame: UInt32 = 16 << 20, maxOutstandingFromSidecar: Int = 1024,
                    handshakeTimeout: UInt64 = 5_000_000_000, healthInterval: UInt64 = 5_000_000_000,
                    healthTimeout: UInt64 = 10_000_000_000, brokerVersion: String, node: String) {
            self.brokerMaxFrame = brokerMaxFrame
            self.maxOutstandingFromSidecar = maxOutstandingFromSidecar
            self.handshakeTimeout = handshakeTimeout
            self.healthInterval = healthInterval
            self.healthTimeout = healthTimeout
            self.brokerVersion = brokerVersion
            self.node = node
        }
    }

    public enum Action {
        /// Write this frame (a reply, a request, GOODBYE); flushed at `.flush` or read complete.
        case send(IPCFrame)
        case flush
        /// A request's reply arrived (ERROR included).
        case complete(Waiter, IPCMessage)
        case fail(Waiter, SidecarRequestError)
        /// HELLO accepted: `name`, `sidecarVersion` and `version` are set.
        case welcomed
        /// REGISTER accepted: `capabilities`, `acceptedHooks` and `gatewayProtocols` are set.
        case registered
        case invalidate(scope: UInt8, value: String)
        /// The sidecar said GOODBYE (its provider leaves the chain); the channel closes next.
        case saidGoodbye
        case gatewayOpen(id: UInt32, session: UInt32, protocol: String, peerAddress: String, peerPort: UInt16,
                         listener: String)
        case gatewayData(session: UInt32, data: ByteBuffer)
        case gatewayClose(session: UInt32)
        /// A notification that means nothing here (logged at debug).
        case ignored(IPCKind)
        /// Log the violation (`reason.violation`); the close follows.
        case violation(SidecarCloseReason)
        case closeChannel
        /// The connection is over: pending requests were failed just before; end the gateway
        /// sessions and tell the hub (`wasRegistered`).
        case ended(SidecarCloseReason, wasRegistered: Bool)
    }

    private enum Pending {
        case caller(Waiter)
        case health
    }

    public let settings: Settings
    public private(set) var state = State.awaitingHello
    /// From HELLO.
    public private(set) var name = ""
    public private(set) var sidecarVersion = ""
    /// The protocol version chosen in WELCOME (1 until then).
    public private(set) var version: UInt16 = 1
    /// The negotiated maximum frame size (the handshake's 65,536 until WELCOME).
    public private(set) var maxFrame = IPCVersion.handshakeMaxFrame
    /// From REGISTER.
    public private(set) var capabilities: [IPCCapability] = []
    public private(set) var acceptedHooks: [String] = []
    /// Protocols of the registered gateway capabilities (SPEC 7.2).
    public private(set) var gatewayProtocols: Set<String> = []
    /// Why it closed, or will once the channel is gone (a sidecar that just goes: peer closed).
    public private(set) var closeReason = SidecarCloseReason.peerClosed

    private var decoder = IPCFrameDecoder()
    private var cumulation: ByteBuffer?
    private var pending = PendingRequests<Pending>()
    private var helloDeadline: UInt64
    private var nextPing: UInt64?
    /// The sidecar's requests read since the last read completed (SPEC 2's flood limit).
    private var requestsSinceReadComplete = 0
    /// A close was asked for (GOODBYE, error, the broker): only one GOODBYE is sent.
    private var closing = false

    public init(settings: Settings, now: UInt64) {
        self.settings = settings
        self.helloDeadline = now &+ settings.handshakeTimeout
    }

    public var outstanding: Int { pending.count }

    // MARK: Bytes in

    /// Bytes read from the socket; `next` then takes frames out one at a time.
    public mutating func read(_ bytes: ByteBuffer) {
        guard state != .closed else { return }
        if cumulation == nil {
            cumulation = bytes
        } else {
            var b = bytes
            cumulation!.writeBuffer(&b)
        }
    }

    /// The actions of the next whole frame read, or nil when more bytes are needed (or the
    /// connection closed). One frame at a time, so the executor acts on each before the next.
    public mutating func next(now: UInt64) -> [Action]? {
        guard state != .closed, var buf = cumulation else { return nil }
        cumulation = nil
        let before = buf
        let frame: IPCFrame?
        do {
            frame = try decoder.decode(buffer: &buf)
        } catch IPCError.unknownKind(let k) {
            // SPEC 4: a request id on an unknown kind is answered ERROR 2 before closing (read
            // from the bytes before decoding: the decoder has consumed the frame).
            var out: [Action] = []
            if let id = before.getInteger(at: before.readerIndex + 5, as: UInt32.self), id != 0, state != .awaitingHello {
                out.append(reply(.error(code: IPCErrorCode.unknownKind.rawValue, message: "unknown kind 0x\(String(k, radix: 16))"), id: id))
            }
            return out + violate("\(IPCError.unknownKind(k))")
        } catch {
            return violate("\(error)")
        }
        guard let frame else {
            cumulation = buf.readableBytes == 0 ? nil : buf.readerIndex > 65_536 ? buf.slice() : buf
            return nil
        }
        if buf.readableBytes > 0 { cumulation = buf }
        return handle(frame, now: now)
    }

    /// All the actions of every whole frame read (for tests and callers that need no interleaving).
    public mutating func receive(_ bytes: ByteBuffer, now: UInt64) -> [Action] {
        read(bytes)
        var out: [Action] = []
        while let a = next(now: now) { out += a }
        return out
    }

    /// The socket read finished: the sidecar may again have its maximum of requests unanswered.
    public mutating func readComplete() {
        requestsSinceReadComplete = 0
    }

    // MARK: Frames from the sidecar

    private mutating func handle(_ frame: IPCFrame, now: UInt64) -> [Action] {
        if frame.kind.version > version {
            // A kind of a later version than this connection's is unknown to it (SPEC 3).
            var out: [Action] = []
            if frame.requestId != 0, state != .awaitingHello {
                out.append(reply(.error(code: IPCErrorCode.unknownKind.rawValue,
                                        message: "unknown kind 0x\(String(frame.kind.rawValue, radix: 16)) in protocol version \(version)"),
                                 id: frame.requestId))
            }
            return out + violate("\(IPCError.unknownKind(frame.kind.rawValue)) in protocol version \(version)")
        }
        let message: IPCMessage
        do {
            message = try IPCMessage.decode(frame)
        } catch {
            return violate("\(error)")
        }
        if state == .awaitingHello {
            guard case .hello(let minV, let maxV, let name, let version, let maxFrame) = message else {
                return violate("\(frame.kind) before HELLO")
            }
            return hello(id: frame.requestId, minV, maxV, name, version, maxFrame)
        }
        if frame.kind.isReply {
            switch pending.match(frame.requestId) {
            case .waiter(.caller(let w)): return [.complete(w, message)]
            case .waiter(.health), .late: return []
            case .unknown: return violate("reply \(frame.kind) to unknown request id \(frame.requestId)")
            }
        }
        let id = frame.requestId
        if id != 0 {
            requestsSinceReadComplete += 1
            if requestsSinceReadComplete > settings.maxOutstandingFromSidecar {
                return violate("flood: more than \(settings.maxOutstandingFromSidecar) requests outstanding")
            }
        }
        switch message {
        case .hello:
            return [reply(.error(code: IPCErrorCode.wrongState.rawValue, message: "HELLO already received"), id: id)]
        case .register(let caps):
            return register(id: id, caps, now: now)
        case .ping:
            return [reply(.pong, id: id)]
        case .goodbye(let reason):
            closeReason = .goodbye(reason)
            closing = true
            return [.saidGoodbye, .closeChannel]
        case .invalidate(let scope, let value):
            guard state == .registered else { return [] }
            return [.invalidate(scope: scope, value: value)]
        case .gwOpen(let session, let proto, let address, let port, let listener):
            return [.gatewayOpen(id: id, session: session, protocol: proto, peerAddress: address, peerPort: port,
                                 listener: listener)]
        case .gwData(let session, let data):
            return [.gatewayData(session: session, data: data)]
        case .gwClose(let session, _):
            return [.gatewayClose(session: session)]
        default:
            // A request kind only the broker sends, or a notification in the wrong direction.
            guard id != 0 else { return [.ignored(frame.kind)] }
            return [reply(.error(code: IPCErrorCode.wrongState.rawValue, message: "\(frame.kind) is not accepted from a sidecar"), id: id)]
        }
    }

    private mutating func hello(id: UInt32, _ minV: UInt16, _ maxV: UInt16, _ name: String, _ version: String,
                                _ theirMax: UInt32) -> [Action] {
        // SPEC 5: the highest version both speak.
        let chosen = min(IPCVersion.current, maxV)
        guard chosen >= max(minV, IPCVersion.minimum) else {
            return [reply(.error(code: IPCErrorCode.versionNotSupported.rawValue,
                              message: "broker speaks versions \(IPCVersion.minimum)-\(IPCVersion.current), sidecar \(minV)-\(maxV)"), id: id)]
                + violate("no common protocol version (\(minV)-\(maxV))")
        }
        self.version = chosen
        guard Self.isValidName(name) else {
            return [reply(.error(code: IPCErrorCode.malformed.rawValue, message: "name must be 1-64 characters of [A-Za-z0-9._-]"), id: id)]
                + violate("invalid sidecar name \(name.debugDescription)")
        }
        self.name = name
        self.sidecarVersion = version
        state = .welcomed
        let welcome = reply(.welcome(version: chosen, brokerVersion: settings.brokerVersion, node: settings.node,
                                     maxFrame: settings.brokerMaxFrame), id: id)
        maxFrame = max(IPCVersion.handshakeMaxFrame, min(settings.brokerMaxFrame, theirMax))
        decoder.maxFrame = maxFrame
        return [welcome, .welcomed]
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || "-_.".unicodeScalars.contains($0))
        }
    }

    private mutating func register(id: UInt32, _ caps: [IPCCapability], now: UInt64) -> [Action] {
        guard state == .welcomed else {
            return [reply(.error(code: IPCErrorCode.wrongState.rawValue, message: "REGISTER already received"), id: id)]
        }
        let protocols = caps.compactMap { c -> String? in if case .gateway(let p) = c { return p } else { return nil } }
        if !protocols.isEmpty && version < IPCVersion.gateway {
            return [reply(.error(code: IPCErrorCode.unsupported.rawValue, message: "gateway capability needs protocol version 2"), id: id)]
        }
        if protocols.contains("") {
            return [reply(.error(code: IPCErrorCode.malformed.rawValue, message: "gateway capability with an empty protocol"), id: id)]
        }
        gatewayProtocols = Set(protocols)
        capabilities = caps
        acceptedHooks = Hook.acceptable(caps)
        state = .registered
        nextPing = now &+ settings.healthInterval
        return [reply(.registered(hooks: acceptedHooks), id: id), .registered]
    }

    private func reply(_ m: IPCMessage, id: UInt32) -> Action {
        .send(m.frame(requestId: id))
    }

    // MARK: The broker's requests

    /// Sends a request whose reply (or failure) goes to `waiter`, failing at `timeout`
    /// nanoseconds from `now`.
    public mutating func request(_ m: IPCMessage, timeout: UInt64, waiter: Waiter, now: UInt64) -> [Action] {
        guard state == .registered || (state == .welcomed && m == .ping), !closing else {
            return [.fail(waiter, .down(name))]
        }
        let frame = m.frame(requestId: 0)
        guard 5 + frame.body.readableBytes <= Int(maxFrame) else {
            return [.fail(waiter, .refused(code: IPCErrorCode.unsupported.rawValue, message: "request larger than the maximum frame"))]
        }
        let id = pending.add(.caller(waiter), deadline: now &+ timeout)
        return [.send(IPCFrame(kind: frame.kind, requestId: id, body: frame.body)), .flush]
    }

    // MARK: Time

    /// The earliest time `tick` has something to do.
    public mutating func nextDeadline() -> UInt64? {
        var d: UInt64? = nil
        func consider(_ t: UInt64?) { if let t, t < (d ?? .max) { d = t } }
        switch state {
        case .awaitingHello: consider(helloDeadline)
        case .registered: consider(nextPing)
        case .welcomed, .closed: break
        }
        consider(pending.nextDeadline())
        return d
    }

    /// Timeouts due at `now`: the handshake, requests (failed), health pings (sent; one
    /// unanswered for the health timeout closes the connection).
    public mutating func tick(now: UInt64) -> [Action] {
        guard state != .closed else { return [] }
        if state == .awaitingHello, now >= helloDeadline { return violate(.helloTimeout) }
        var out: [Action] = []
        for p in pending.expired(now: now) {
            switch p {
            case .caller(let w): out.append(.fail(w, .timedOut(name)))
            case .health: return out + violate(.healthTimeout)
            }
        }
        if state == .registered, let due = nextPing, now >= due {
            nextPing = now &+ settings.healthInterval
            let id = pending.add(.health, deadline: now &+ settings.healthTimeout)
            out += [.send(IPCMessage.ping.frame(requestId: id)), .flush]
        }
        return out
    }

    // MARK: Closing

    /// The broker ends the connection: GOODBYE first when the sidecar is serving.
    public mutating func close(_ reason: SidecarCloseReason) -> [Action] {
        guard state != .closed, !closing else { return [] }
        closing = true
        closeReason = reason
        if state == .registered {
            return [.send(IPCMessage.goodbye(reason: reason.description).frame(requestId: 0)), .flush, .closeChannel]
        }
        return [.closeChannel]
    }

    /// The channel failed.
    public mutating func failed(_ error: String) -> [Action] {
        guard state != .closed else { return [] }
        closing = true
        closeReason = .transportError(error)
        return [.closeChannel]
    }

    /// The channel is gone: a frame cut short is a violation; everything pending fails.
    public mutating func channelClosed() -> [Action] {
        guard state != .closed else { return [] }
        if let rest = cumulation, rest.readableBytes > 0 {
            return violate("connection closed inside a frame (\(rest.readableBytes) bytes)")
        }
        return end()
    }

    private mutating func violate(_ why: String) -> [Action] {
        violate(.protocolViolation(why))
    }

    private mutating func violate(_ reason: SidecarCloseReason) -> [Action] {
        guard state != .closed else { return [] }
        closeReason = reason
        return [.violation(reason), .flush, .closeChannel] + end()
    }

    private mutating func end() -> [Action] {
        let wasRegistered = state == .registered
        state = .closed
        cumulation = nil
        nextPing = nil
        var out: [Action] = []
        for p in pending.removeAll() {
            if case .caller(let w) = p { out.append(.fail(w, .closed(name))) }
        }
        out.append(.ended(closeReason, wasRegistered: wasRegistered))
        return out
    }
}
