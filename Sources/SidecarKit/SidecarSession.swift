import NIOCore
import SwiftletIPC

/// The sidecar's side of one connection as a state machine (SPEC 4): it turns each frame from
/// the broker into actions for `Sidecar` to execute, and never does I/O itself.
struct SidecarSession {
    enum State: Equatable {
        case awaitingWelcome, awaitingRegistered, serving, closed
    }

    /// A broker request for a handler.
    enum Request: Sendable {
        case authn(AuthnRequest)
        case authz(AuthzRequest)
        case publish(IPCClient, IPCPublishMessage)
        case ctl(command: String, args: [String])
    }

    struct Welcome: Equatable {
        var version: UInt16
        var brokerVersion: String
        var node: String
        var maxFrame: UInt32
    }

    enum Action {
        case send(IPCMessage, id: UInt32)
        case welcomed(Welcome)
        case registered(hooks: [String])
        case serve(Request, id: UInt32)
        case deliver([IPCHookEvent])
        /// Close the connection (and reconnect), sending GOODBYE first when asked.
        case close(reason: String, goodbye: Bool)
        case ignore(String)
        /// Version 2: the broker's answer to a GW_OPEN this side sent (GW_OPENED or ERROR).
        /// `Sidecar` checks that `id` is one of its outstanding GW_OPENs.
        case gatewayReply(IPCMessage, id: UInt32)
        case gatewayData(session: UInt32, data: ByteBuffer)
        case gatewayClosed(session: UInt32, reason: String)
    }

    static let helloId: UInt32 = 1
    static let registerId: UInt32 = 2

    private(set) var state = State.awaitingWelcome
    /// The negotiated maximum frame size (SPEC 2): the handshake's 65,536 until WELCOME.
    private(set) var maxFrame = IPCVersion.handshakeMaxFrame
    /// The version chosen in WELCOME.
    private(set) var protocolVersion: UInt16 = 0
    let localMaxFrame: UInt32
    let name: String
    let version: String
    let capabilities: [IPCCapability]

    init(name: String, version: String, localMaxFrame: UInt32, capabilities: [IPCCapability]) {
        self.name = name
        self.version = version
        self.localMaxFrame = max(localMaxFrame, IPCVersion.handshakeMaxFrame)
        self.capabilities = capabilities
    }

    /// The lowest protocol version this sidecar accepts: 2 when it carries gateway sessions
    /// (SPEC 7), else 1.
    var minVersion: UInt16 {
        capabilities.contains { if case .gateway = $0 { return true } else { return false } }
            ? IPCVersion.gateway : IPCVersion.minimum
    }

    /// HELLO, the first frame of every connection.
    func hello() -> IPCFrame {
        IPCMessage.hello(minVersion: minVersion, maxVersion: IPCVersion.current, name: name,
                         sidecarVersion: version, maxFrame: localMaxFrame).frame(requestId: Self.helloId)
    }

    mutating func receive(_ frame: IPCFrame) -> [Action] {
        guard state != .closed else { return [] }
        let message: IPCMessage
        do {
            message = try IPCMessage.decode(frame)
        } catch {
            return close("malformed \(frame.kind) from the broker: \(error)")
        }
        if frame.kind.version > max(protocolVersion, IPCVersion.minimum) {
            return close("\(frame.kind) from the broker in protocol version \(protocolVersion)")
        }
        if frame.kind.isReply { return reply(message, id: frame.requestId) }

        let id = frame.requestId
        switch message {
        case .ping:
            return [.send(.pong, id: id)]
        case .goodbye(let reason):
            return close("broker said goodbye: \(reason.isEmpty ? "(no reason)" : reason)", goodbye: false)
        case .authnRequest(let client, let password):
            return serve(.authn(AuthnRequest(client: client, password: password.map { Array($0.readableBytesView) })), id: id)
        case .authzRequest(let client, let access, let topic, let qos, let retain):
            return serve(.authz(AuthzRequest(client: client, access: access, topic: topic, qos: qos, retain: retain)), id: id)
        case .hookPublish(let client, let message):
            return serve(.publish(client, message), id: id)
        case .ctlRequest(let command, let args):
            return serve(.ctl(command: command, args: args), id: id)
        case .hookEvents(let events):
            guard state == .serving else { return [.ignore("HOOK_EVENTS before REGISTERED")] }
            return [.deliver(events)]
        case .gwData(let session, let data):
            guard state == .serving else { return [.ignore("GW_DATA before REGISTERED")] }
            return [.gatewayData(session: session, data: data)]
        case .gwClose(let session, let reason):
            guard state == .serving else { return [.ignore("GW_CLOSE before REGISTERED")] }
            return [.gatewayClosed(session: session, reason: reason)]
        default:
            // A kind only a sidecar sends (HELLO, REGISTER, INVALIDATE): wrong direction.
            guard id != 0 else { return [.ignore("\(frame.kind) from the broker")] }
            return [.send(.error(code: IPCErrorCode.wrongState.rawValue, message: "\(frame.kind) is not served by a sidecar"), id: id)]
        }
    }

    private mutating func serve(_ request: Request, id: UInt32) -> [Action] {
        guard state == .serving else {
            return [.send(.error(code: IPCErrorCode.wrongState.rawValue, message: "not registered yet"), id: id)]
        }
        return [.serve(request, id: id)]
    }

    private mutating func reply(_ message: IPCMessage, id: UInt32) -> [Action] {
        switch (state, id, message) {
        case (.awaitingWelcome, Self.helloId, .welcome(let v, let brokerVersion, let node, let theirMax)):
            guard (minVersion...IPCVersion.current).contains(v) else {
                return close("broker chose protocol version \(v), this sidecar speaks \(minVersion)-\(IPCVersion.current)")
            }
            protocolVersion = v
            maxFrame = max(IPCVersion.handshakeMaxFrame, min(localMaxFrame, theirMax))
            state = .awaitingRegistered
            return [.welcomed(Welcome(version: v, brokerVersion: brokerVersion, node: node, maxFrame: maxFrame)),
                    .send(.register(capabilities), id: Self.registerId)]
        case (.awaitingWelcome, Self.helloId, .error(let code, let text)):
            return close("broker refused HELLO: ERROR \(code): \(text)", goodbye: false)
        case (.awaitingRegistered, Self.registerId, .registered(let hooks)):
            state = .serving
            return [.registered(hooks: hooks)]
        case (.awaitingRegistered, Self.registerId, .error(let code, let text)):
            return close("broker refused REGISTER: ERROR \(code): \(text)")
        case (.serving, _, .gwOpened), (.serving, _, .error) where id > Self.registerId:
            return [.gatewayReply(message, id: id)]
        default:
            // This side sends no other requests, so any other reply matches nothing (SPEC 4).
            return close("\(message.kind) with id \(id) matches no outstanding request")
        }
    }

    private mutating func close(_ reason: String, goodbye: Bool = true) -> [Action] {
        state = .closed
        return [.close(reason: reason, goodbye: goodbye)]
    }
}
