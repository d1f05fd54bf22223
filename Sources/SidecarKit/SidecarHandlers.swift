import SwiftletIPC

/// An auth provider: answers one kind of request. Providers are asked in ascending `order`.
public struct AuthProvider<Request: Sendable, Answer: Sendable>: Sendable {
    public var order: UInt16
    public var handle: @Sendable (Request) async throws -> Answer
    public init(order: UInt16 = 100, handle: @escaping @Sendable (Request) async throws -> Answer) {
        self.order = order
        self.handle = handle
    }
}

/// Answers AUTHN_REQUEST.
public typealias Authenticator = AuthProvider<AuthnRequest, AuthnAnswer>
/// Answers AUTHZ_REQUEST.
public typealias Authorizer = AuthProvider<AuthzRequest, AuthzAnswer>

/// Receives a batch of events of one hook, in the broker's order. Batches are delivered one
/// at a time (a slow hook delays the next batch, never the broker: it drops when full).
public typealias HookHandler = @Sendable ([IPCHookEvent]) async -> Void

/// Sees every PUBLISH before it is routed (synchronous `message.publish`, SPEC 3.5). After
/// `budgetMs` (at most 1000) the broker stops waiting and routes the message unchanged.
public struct PublishFilter: Sendable {
    public var budgetMs: UInt32
    public var handle: @Sendable (IPCClient, IPCPublishMessage) async throws -> PublishAction
    public init(budgetMs: UInt32 = 100, handle: @escaping @Sendable (IPCClient, IPCPublishMessage) async throws -> PublishAction) {
        self.budgetMs = min(max(budgetMs, 1), 1000)
        self.handle = handle
    }
}

/// A `swiftlet-ctl <name> args...` command (emqttd_ctl:register_cmd).
public struct SidecarCommand: Sendable {
    /// One line for `swiftlet-ctl help`, e.g. "cmd arg1 arg2: echoes its arguments".
    public var usage: String
    /// Runs with the arguments and the sidecar serving them (for `Sidecar.invalidate`).
    public var run: @Sendable ([String], Sidecar) async throws -> CommandResult
    public init(usage: String, run: @escaping @Sendable ([String]) async throws -> CommandResult) {
        self.usage = usage
        self.run = { args, _ in try await run(args) }
    }
    public init(usage: String, sidecarRun: @escaping @Sendable ([String], Sidecar) async throws -> CommandResult) {
        self.usage = usage
        self.run = sidecarRun
    }
}

/// Everything a sidecar serves. Only what is set is registered with the broker. A handler
/// that throws is answered with ERROR 7 (internal error), which the broker treats like no
/// answer (its fallback for auth, "continue" for a publish filter).
public struct SidecarHandlers: Sendable {
    public var authenticator: Authenticator?
    public var authorizer: Authorizer?
    /// Asynchronous hooks by name (`client.connected`, ... the nine of SPEC 3.4).
    public var hooks: [String: HookHandler] = [:]
    public var publishFilter: PublishFilter?
    public var commands: [String: SidecarCommand] = [:]
    /// Protocols carried as gateway sessions (SPEC 7); any makes the sidecar speak version 2.
    public var gatewayProtocols: [String] = []

    public init() {}

    /// Registers a gateway for `protocol` (e.g. "mqtt-sn"), so that `Sidecar.openSession`
    /// may carry its clients into the broker.
    public mutating func gateway(protocol name: String) {
        precondition(!name.isEmpty, "a gateway protocol needs a name")
        if !gatewayProtocols.contains(name) { gatewayProtocols.append(name) }
    }

    public mutating func onAuthenticate(order: UInt16 = 100,
                                        _ handle: @escaping @Sendable (AuthnRequest) async throws -> AuthnAnswer) {
        authenticator = Authenticator(order: order, handle: handle)
    }

    public mutating func onAuthorize(order: UInt16 = 100,
                                     _ handle: @escaping @Sendable (AuthzRequest) async throws -> AuthzAnswer) {
        authorizer = Authorizer(order: order, handle: handle)
    }

    public mutating func onHook(_ name: String, _ handle: @escaping HookHandler) {
        hooks[name] = handle
    }

    public mutating func onPublish(budgetMs: UInt32 = 100,
                                   _ handle: @escaping @Sendable (IPCClient, IPCPublishMessage) async throws -> PublishAction) {
        publishFilter = PublishFilter(budgetMs: budgetMs, handle: handle)
    }

    public mutating func addCommand(_ name: String, usage: String,
                                    _ run: @escaping @Sendable ([String]) async throws -> CommandResult) {
        commands[name] = SidecarCommand(usage: usage, run: run)
    }

    /// A command that needs the sidecar serving it (to send INVALIDATE, say): the handlers are
    /// made before the `Sidecar`, so it is handed to `run` with the arguments.
    public mutating func addCommand(_ name: String, usage: String,
                                    sidecarRun run: @escaping @Sendable ([String], Sidecar) async throws -> CommandResult) {
        commands[name] = SidecarCommand(usage: usage, sidecarRun: run)
    }

    /// What REGISTER announces, in a stable order.
    public var capabilities: [IPCCapability] {
        var caps: [IPCCapability] = []
        if let a = authenticator { caps.append(.authn(order: a.order)) }
        if let a = authorizer { caps.append(.authz(order: a.order)) }
        for name in hooks.keys.sorted() { caps.append(.hook(name: name, sync: false, budgetMs: 0)) }
        if let f = publishFilter { caps.append(.hook(name: "message.publish", sync: true, budgetMs: f.budgetMs)) }
        for name in commands.keys.sorted() { caps.append(.ctl(command: name, usage: commands[name]!.usage)) }
        for name in gatewayProtocols { caps.append(.gateway(protocol: name)) }
        return caps
    }
}
