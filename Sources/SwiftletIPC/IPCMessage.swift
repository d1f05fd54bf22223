import NIOCore

/// Who a request is about (SPEC 3.2).
public struct IPCClient: Sendable, Equatable {
    public var clientId: String
    public var username: String?
    public var peerAddress: String
    public var peerPort: UInt16
    public var protocolLevel: UInt8
    public var listener: String
    public var certCommonName: String?
    public var certSubject: String?

    public init(clientId: String, username: String?, peerAddress: String, peerPort: UInt16, protocolLevel: UInt8,
                listener: String, certCommonName: String? = nil, certSubject: String? = nil) {
        self.clientId = clientId
        self.username = username
        self.peerAddress = peerAddress
        self.peerPort = peerPort
        self.protocolLevel = protocolLevel
        self.listener = listener
        self.certCommonName = certCommonName
        self.certSubject = certSubject
    }

    func write(_ w: inout IPCWriter) {
        w.str(clientId)
        w.opt(username) { $0.str($1) }
        w.str(peerAddress)
        w.u16(peerPort)
        w.u8(protocolLevel)
        w.str(listener)
        w.opt(certCommonName) { $0.str($1) }
        w.opt(certSubject) { $0.str($1) }
    }

    static func read(_ r: inout IPCReader) throws -> IPCClient {
        IPCClient(clientId: try r.str(), username: try r.opt { try $0.str() }, peerAddress: try r.str(),
                  peerPort: try r.u16(), protocolLevel: try r.u8(), listener: try r.str(),
                  certCommonName: try r.opt { try $0.str() }, certSubject: try r.opt { try $0.str() })
    }
}

/// A provider's answer (SPEC 3.3).
public enum IPCDecision: UInt8, Sendable {
    case allow = 0, deny = 1, ignore = 2, error = 3
}

/// Access asked about in AUTHZ_REQUEST (emqttd's values).
public enum IPCAccess: UInt8, Sendable {
    case subscribe = 1, publish = 2
}

/// What a sidecar offers (SPEC 3.1).
public enum IPCCapability: Sendable, Equatable {
    case authn(order: UInt16)
    case authz(order: UInt16)
    case hook(name: String, sync: Bool, budgetMs: UInt32)
    case ctl(command: String, usage: String)
    case gateway(protocol: String)
}

/// A key and a raw value (maps in SPEC 2.1).
public struct IPCField: Sendable, Equatable {
    public var key: String
    public var value: ByteBuffer
    public init(_ key: String, _ value: ByteBuffer) {
        self.key = key
        self.value = value
    }
    public init(_ key: String, _ text: String) {
        self.key = key
        var b = ByteBuffer()
        b.writeString(text)
        self.value = b
    }
    public var text: String { String(buffer: value) }
}

public struct IPCHookEvent: Sendable, Equatable {
    public var hook: String
    public var timestampMs: UInt64
    public var fields: [IPCField]
    public init(hook: String, timestampMs: UInt64, fields: [IPCField]) {
        self.hook = hook
        self.timestampMs = timestampMs
        self.fields = fields
    }
    public subscript(_ key: String) -> String? { fields.first { $0.key == key }?.text }
}

public struct IPCPublishMessage: Sendable, Equatable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: UInt8
    public var retain: Bool
    public var userProperties: [IPCField]
    public init(topic: String, payload: ByteBuffer, qos: UInt8, retain: Bool, userProperties: [IPCField] = []) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.userProperties = userProperties
    }

    func write(_ w: inout IPCWriter) {
        w.str(topic)
        w.bytes(payload)
        w.u8(qos)
        w.bool(retain)
        w.list(userProperties) { w, f in w.str(f.key); w.bytes(f.value) }
    }

    static func read(_ r: inout IPCReader) throws -> IPCPublishMessage {
        IPCPublishMessage(topic: try r.str(), payload: try r.bytes(), qos: try r.u8(), retain: try r.bool(),
                          userProperties: try r.list { IPCField(try $0.str(), try $0.bytes()) })
    }
}

/// A subscription carried by AUTHN_REPLY_SUBS (version 3, SPEC 8): a topic filter and the
/// QoS (0, 1 or 2) to subscribe it at.
public struct IPCSubscription: Sendable, Equatable, Hashable {
    public var filter: String
    public var qos: UInt8
    public init(filter: String, qos: UInt8) {
        self.filter = filter
        self.qos = qos
    }
}

/// ERROR codes (SPEC 3.6).
public enum IPCErrorCode: UInt16, Sendable {
    case malformed = 1, unknownKind = 2, unknownRequest = 3, unsupported = 4, wrongState = 5
    case overloaded = 6, internalError = 7, versionNotSupported = 8
}

/// Every message of the catalogue (SPEC 3), typed.
public enum IPCMessage: Sendable, Equatable {
    case hello(minVersion: UInt16, maxVersion: UInt16, name: String, sidecarVersion: String, maxFrame: UInt32)
    case welcome(version: UInt16, brokerVersion: String, node: String, maxFrame: UInt32)
    case register([IPCCapability])
    case registered(hooks: [String])
    case ping
    case pong
    case error(code: UInt16, message: String)
    case goodbye(reason: String)
    case authnRequest(client: IPCClient, password: ByteBuffer?)
    case authnReply(decision: IPCDecision, superuser: Bool, ttlMs: UInt32, reason: String)
    case authzRequest(client: IPCClient, access: IPCAccess, topic: String, qos: UInt8, retain: Bool)
    case authzReply(decision: IPCDecision, ttlMs: UInt32, reason: String)
    case hookEvents([IPCHookEvent])
    case hookPublish(client: IPCClient, message: IPCPublishMessage)
    case hookPublishReply(action: UInt8, message: IPCPublishMessage?)
    case ctlRequest(command: String, args: [String])
    case ctlReply(status: UInt8, text: String, json: String)
    case invalidate(scope: UInt8, value: String)
    // Version 2 (SPEC 7). `session` is never 0.
    case gwOpen(session: UInt32, protocol: String, peerAddress: String, peerPort: UInt16, listener: String)
    case gwOpened(session: UInt32)
    case gwData(session: UInt32, data: ByteBuffer)
    case gwClose(session: UInt32, reason: String)
    // Version 3 (SPEC 8): AUTHN_REPLY with the subscriptions to apply when it allows.
    case authnReplySubs(decision: IPCDecision, superuser: Bool, ttlMs: UInt32, reason: String,
                        subscriptions: [IPCSubscription])

    public var kind: IPCKind {
        switch self {
        case .hello: return .hello
        case .welcome: return .welcome
        case .register: return .register
        case .registered: return .registered
        case .ping: return .ping
        case .pong: return .pong
        case .error: return .error
        case .goodbye: return .goodbye
        case .authnRequest: return .authnRequest
        case .authnReply: return .authnReply
        case .authzRequest: return .authzRequest
        case .authzReply: return .authzReply
        case .hookEvents: return .hookEvents
        case .hookPublish: return .hookPublish
        case .hookPublishReply: return .hookPublishReply
        case .ctlRequest: return .ctlRequest
        case .ctlReply: return .ctlReply
        case .invalidate: return .invalidate
        case .gwOpen: return .gwOpen
        case .gwOpened: return .gwOpened
        case .gwData: return .gwData
        case .gwClose: return .gwClose
        case .authnReplySubs: return .authnReplySubs
        }
    }

    public func frame(requestId: UInt32) -> IPCFrame {
        IPCFrame(kind: kind, requestId: requestId, body: body())
    }

    public func body() -> ByteBuffer {
        var w = IPCWriter()
        switch self {
        case .hello(let minV, let maxV, let name, let v, let maxFrame):
            w.u16(minV); w.u16(maxV); w.str(name); w.str(v); w.u32(maxFrame)
        case .welcome(let v, let bv, let node, let maxFrame):
            w.u16(v); w.str(bv); w.str(node); w.u32(maxFrame)
        case .register(let caps):
            w.list(caps) { w, c in
                switch c {
                case .authn(let o): w.u8(1); w.u16(o)
                case .authz(let o): w.u8(2); w.u16(o)
                case .hook(let name, let sync, let budget): w.u8(3); w.str(name); w.bool(sync); w.u32(budget)
                case .ctl(let cmd, let usage): w.u8(4); w.str(cmd); w.str(usage)
                case .gateway(let p): w.u8(5); w.str(p)
                }
            }
        case .registered(let hooks):
            w.list(hooks) { $0.str($1) }
        case .ping, .pong:
            break
        case .error(let code, let message):
            w.u16(code); w.str(message)
        case .goodbye(let reason):
            w.str(reason)
        case .authnRequest(let client, let password):
            client.write(&w)
            w.opt(password) { $0.bytes($1) }
        case .authnReply(let d, let su, let ttl, let reason):
            w.u8(d.rawValue); w.bool(su); w.u32(ttl); w.str(reason)
        case .authzRequest(let client, let access, let topic, let qos, let retain):
            client.write(&w)
            w.u8(access.rawValue); w.str(topic); w.u8(qos); w.bool(retain)
        case .authzReply(let d, let ttl, let reason):
            w.u8(d.rawValue); w.u32(ttl); w.str(reason)
        case .hookEvents(let events):
            w.list(events) { w, e in
                w.str(e.hook); w.u64(e.timestampMs)
                w.list(e.fields) { w, f in w.str(f.key); w.bytes(f.value) }
            }
        case .hookPublish(let client, let message):
            client.write(&w)
            message.write(&w)
        case .hookPublishReply(let action, let message):
            // Action 1 without a message is sent as 0 (continue): the body stays decodable.
            if action == 1, let message {
                w.u8(1)
                message.write(&w)
            } else {
                w.u8(action == 1 ? 0 : action)
            }
        case .ctlRequest(let cmd, let args):
            w.str(cmd); w.list(args) { $0.str($1) }
        case .ctlReply(let status, let text, let json):
            w.u8(status); w.str(text); w.str(json)
        case .invalidate(let scope, let value):
            w.u8(scope); w.str(value)
        case .gwOpen(let session, let proto, let address, let port, let listener):
            w.u32(session); w.str(proto); w.str(address); w.u16(port); w.str(listener)
        case .gwOpened(let session):
            w.u32(session)
        case .gwData(let session, let data):
            w.u32(session); w.bytes(data)
        case .gwClose(let session, let reason):
            w.u32(session); w.str(reason)
        case .authnReplySubs(let d, let su, let ttl, let reason, let subs):
            w.u8(d.rawValue); w.bool(su); w.u32(ttl); w.str(reason)
            w.list(subs) { w, s in w.str(s.filter); w.u8(s.qos) }
        }
        return w.buffer
    }

    public static func decode(_ frame: IPCFrame) throws -> IPCMessage {
        let isRequest = [.hello, .register, .ping, .authnRequest, .authzRequest, .hookPublish, .ctlRequest, .gwOpen]
            .contains(frame.kind)
        let isNotification = [.goodbye, .hookEvents, .invalidate, .gwData, .gwClose].contains(frame.kind)
        if isRequest && frame.requestId == 0 { throw IPCError.malformed("request \(frame.kind) with id 0") }
        if isNotification && frame.requestId != 0 { throw IPCError.malformed("notification \(frame.kind) with a request id") }
        var r = IPCReader(frame.body)
        let m: IPCMessage
        switch frame.kind {
        case .hello:
            m = .hello(minVersion: try r.u16(), maxVersion: try r.u16(), name: try r.str(), sidecarVersion: try r.str(),
                       maxFrame: try r.u32())
        case .welcome:
            m = .welcome(version: try r.u16(), brokerVersion: try r.str(), node: try r.str(), maxFrame: try r.u32())
        case .register:
            m = .register(try r.list { r in
                switch try r.u8() {
                case 1: return .authn(order: try r.u16())
                case 2: return .authz(order: try r.u16())
                case 3: return .hook(name: try r.str(), sync: try r.bool(), budgetMs: try r.u32())
                case 4: return .ctl(command: try r.str(), usage: try r.str())
                case 5: return .gateway(protocol: try r.str())
                case let t: throw IPCError.malformed("capability type \(t)")
                }
            })
        case .registered:
            m = .registered(hooks: try r.list { try $0.str() })
        case .ping: m = .ping
        case .pong: m = .pong
        case .error: m = .error(code: try r.u16(), message: try r.str())
        case .goodbye: m = .goodbye(reason: try r.str())
        case .authnRequest:
            m = .authnRequest(client: try IPCClient.read(&r), password: try r.opt { try $0.bytes() })
        case .authnReply:
            let raw = try r.u8()
            guard let d = IPCDecision(rawValue: raw) else { throw IPCError.malformed("decision \(raw)") }
            m = .authnReply(decision: d, superuser: try r.bool(), ttlMs: try r.u32(), reason: try r.str())
        case .authzRequest:
            let client = try IPCClient.read(&r)
            let raw = try r.u8()
            guard let access = IPCAccess(rawValue: raw) else { throw IPCError.malformed("access \(raw)") }
            m = .authzRequest(client: client, access: access, topic: try r.str(), qos: try r.u8(), retain: try r.bool())
        case .authzReply:
            let raw = try r.u8()
            guard let d = IPCDecision(rawValue: raw) else { throw IPCError.malformed("decision \(raw)") }
            m = .authzReply(decision: d, ttlMs: try r.u32(), reason: try r.str())
        case .hookEvents:
            m = .hookEvents(try r.list { r in
                IPCHookEvent(hook: try r.str(), timestampMs: try r.u64(),
                             fields: try r.list { IPCField(try $0.str(), try $0.bytes()) })
            })
        case .hookPublish:
            m = .hookPublish(client: try IPCClient.read(&r), message: try IPCPublishMessage.read(&r))
        case .hookPublishReply:
            let action = try r.u8()
            guard action <= 2 else { throw IPCError.malformed("publish action \(action)") }
            m = .hookPublishReply(action: action, message: action == 1 ? try IPCPublishMessage.read(&r) : nil)
        case .ctlRequest:
            m = .ctlRequest(command: try r.str(), args: try r.list { try $0.str() })
        case .ctlReply:
            let status = try r.u8()
            guard status <= 2 else { throw IPCError.malformed("ctl status \(status)") }
            m = .ctlReply(status: status, text: try r.str(), json: try r.str())
        case .invalidate:
            let scope = try r.u8()
            guard scope <= 2 else { throw IPCError.malformed("invalidate scope \(scope)") }
            m = .invalidate(scope: scope, value: try r.str())
        case .gwOpen:
            m = .gwOpen(session: try r.session(), protocol: try r.str(), peerAddress: try r.str(), peerPort: try r.u16(),
                        listener: try r.str())
        case .gwOpened:
            m = .gwOpened(session: try r.session())
        case .gwData:
            m = .gwData(session: try r.session(), data: try r.bytes())
        case .gwClose:
            m = .gwClose(session: try r.session(), reason: try r.str())
        case .authnReplySubs:
            let raw = try r.u8()
            guard let d = IPCDecision(rawValue: raw) else { throw IPCError.malformed("decision \(raw)") }
            m = .authnReplySubs(decision: d, superuser: try r.bool(), ttlMs: try r.u32(), reason: try r.str(),
                                subscriptions: try r.list { r in
                                    let filter = try r.str()
                                    let qos = try r.u8()
                                    guard qos <= 2 else { throw IPCError.malformed("subscription QoS \(qos)") }
                                    return IPCSubscription(filter: filter, qos: qos)
                                })
        }
        try r.end()
        return m
    }
}

extension IPCReader {
    /// A gateway session id (SPEC 7): a `u32` that is never 0.
    mutating func session() throws -> UInt32 {
        let id = try u32()
        if id == 0 { throw IPCError.malformed("gateway session 0") }
        return id
    }
}
