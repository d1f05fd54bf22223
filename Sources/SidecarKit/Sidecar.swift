import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import SwiftletIPC

/// A sidecar process's connection to the broker: connects to the sidecar socket, says HELLO,
/// registers what `handlers` serve, answers requests concurrently (replies go out in any
/// order with the request's id), and reconnects with backoff whenever the broker is not
/// there, restarts or sends something that is not the protocol.
///
/// ```swift
/// let sidecar = try Sidecar(name: "demo", handlers: handlers)
/// await sidecar.run()   // until SIGTERM/SIGINT or shutdown()
/// ```
public final class Sidecar: Sendable {
    public let name: String
    public let handlers: SidecarHandlers
    public let environment: SidecarEnvironment
    public let options: SidecarOptions
    public let logger: Logger
    public let socketPath: String

    private let group: any EventLoopGroup
    private let state = Locked(SharedState())
    private let jobs: AsyncStream<@Sendable () async -> Void>
    private let jobSink: AsyncStream<@Sendable () async -> Void>.Continuation
    private let hookBatches: AsyncStream<[IPCHookEvent]>
    private let hookSink: AsyncStream<[IPCHookEvent]>.Continuation

    private struct SharedState {
        var started = false
        var stopping = false
        var channel: Channel?
        var welcomed = false
        var serving = false
        var wake: EventLoopPromise<Void>?
        var droppedHookBatches = 0
        var registrations = 0
        var signalSources: [DispatchSourceSignal] = []
        // Gateway sessions (SPEC 7) of the current connection.
        var maxFrame = IPCVersion.handshakeMaxFrame
        var protocolVersion: UInt16 = 0
        /// Subscriptions dropped because the broker speaks a version before 3 (logged once).
        var warnedNoSubscriptions = false
        var nextRequestId = SidecarSession.registerId
        var nextSessionId: UInt32 = 0
        var opens: [UInt32: CheckedContinuation<IPCMessage, Error>] = [:]
        var sessions: [UInt32: GatewaySession] = [:]
    }

    /// - Parameters:
    ///   - name: the sidecar's name when the environment gives none (a managed sidecar is
    ///     named by the broker through `SWIFTLET_SIDECAR_NAME`).
    ///   - environment: socket, name and config paths; `.current` reads flags and env.
    ///   - logger: defaults to stderr at `SWIFTLET_LOG_LEVEL` (`SidecarLogging.makeLogger`).
    public init(name: String? = nil, handlers: SidecarHandlers, environment: SidecarEnvironment = .current,
                options: SidecarOptions = SidecarOptions(), logger: Logger? = nil,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        guard let socketPath = environment.socketPath else { throw SidecarError.noSocket }
        let resolved = environment.name ?? name ?? "sidecar"
        guard SidecarError.isValidName(resolved) else { throw SidecarError.invalidName(resolved) }
        self.name = resolved
        self.socketPath = socketPath
        self.handlers = handlers
        self.environment = environment
        self.options = options
        self.logger = logger ?? SidecarLogging.makeLogger(name: resolved, environment: environment)
        self.group = eventLoopGroup
        (jobs, jobSink) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        (hookBatches, hookSink) = AsyncStream.makeStream(of: [IPCHookEvent].self,
                                                         bufferingPolicy: .bufferingOldest(max(1, options.hookQueueCapacity)))
    }

    /// True between REGISTERED and the end of that connection.
    public var isServing: Bool { state.withLock { $0.serving } }
    /// How many times this sidecar has completed REGISTER (1 + reconnections).
    public var registrations: Int { state.withLock { $0.registrations } }
    /// HOOK_EVENTS batches dropped because the hook handlers fell behind.
    public var droppedHookBatches: Int { state.withLock { $0.droppedHookBatches } }

    /// Serves until `shutdown()`, SIGTERM/SIGINT (with `options.handleSignals`) or the
    /// cancellation of the calling task. Handlers run as child tasks of this call; it returns
    /// once those in flight have finished and queued hook events are delivered. Call once.
    public func run() async {
        let first = state.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started
        }
        precondition(first, "Sidecar.run() may be called once")
        // Database client libraries (hiredis, libldap, libpq, ...) write to their sockets with
        // write(2): a server that closed its end must be an error on that connection, not a
        // SIGPIPE that ends the whole sidecar.
        signal(SIGPIPE, SIG_IGN)
        if options.handleSignals { installSignalHandlers() }
        logger.info("sidecar starting", metadata: ["sidecar.socket": "\(socketPath)"])
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.deliverHooks() }
                group.addTask {
                    await self.connectLoop()
                    self.jobSink.finish()
                }
                for await job in jobs {
                    group.addTask { await job() }
                }
                // Queued hook events are still delivered and handlers in flight finish
                // (their replies have no connection left); then run() returns.
                hookSink.finish()
            }
        } onCancel: {
            self.shutdown(reason: "cancelled")
        }
        for source in state.withLock({ $0.signalSources }) { source.cancel() }
        logger.info("sidecar stopped")
    }

    /// Says GOODBYE to the broker, closes the connection and makes `run()` return. Any thread.
    public func shutdown(reason: String = "shutdown") {
        let (channel, welcomed, wake, already) = state.withLock { s in
            let already = s.stopping
            s.stopping = true
            let wake = s.wake
            s.wake = nil
            return (s.channel, s.welcomed, wake, already)
        }
        guard !already else { return }
        logger.info("shutting down", metadata: ["sidecar.reason": "\(reason)"])
        wake?.succeed(())
        guard let channel else { return }
        if welcomed {
            channel.writeAndFlush(IPCMessage.goodbye(reason: reason).frame(requestId: 0)).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            channel.close(promise: nil)
        }
    }

    /// Asks the broker to drop cached decisions (INVALIDATE), e.g. after a user's password or
    /// ACL changed. Returns false when not connected (a reconnecting sidecar's cached entries
    /// are dropped by the broker anyway).
    @discardableResult
    public func invalidate(_ scope: InvalidateScope) async -> Bool {
        guard let channel = state.withLock({ $0.serving ? $0.channel : nil }) else { return false }
        do {
            try await channel.writeAndFlush(scope.message.frame(requestId: 0)).get()
            return true
        } catch {
            return false
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    // MARK: Gateway sessions

    /// Opens a gateway session (GW_OPEN, SPEC 7.3) for one client of `protocol`, which must
    /// have been registered with `SidecarHandlers.gateway(protocol:)`. The client's address,
    /// port and `listener` (e.g. "mqtt-sn:udp:0.0.0.0:1884") are what the broker shows and
    /// hands to auth for it. Then `send` the client's CONNECT first.
    public func openSession(protocol name: String, peerAddress: String, peerPort: UInt16 = 0,
                            listener: String = "") async throws -> GatewaySession {
        guard handlers.gatewayProtocols.contains(name) else { throw GatewayError.protocolNotRegistered(name) }
        let prepared = state.withLock { s -> (Channel, GatewaySession, UInt32)? in
            guard s.serving, s.protocolVersion >= IPCVersion.gateway, let channel = s.channel else { return nil }
            var sid = s.nextSessionId
            repeat {
                sid &+= 1
                if sid == 0 { sid = 1 }
            } while s.sessions[sid] != nil
            s.nextSessionId = sid
            s.nextRequestId = max(s.nextRequestId &+ 1, SidecarSession.registerId + 1)
            let session = GatewaySession(id: sid, protocolName: name, channel: channel, maxFrame: s.maxFrame)
            s.sessions[sid] = session
            return (channel, session, s.nextRequestId)
        }
        guard let (channel, session, rid) = prepared else { throw GatewayError.notServing }
        func forget() {
            state.withLock { s in if s.sessions[session.id] === session { s.sessions[session.id] = nil } }
        }
        let frame = IPCMessage.gwOpen(session: session.id, protocol: name, peerAddress: peerAddress, peerPort: peerPort,
                                      listener: listener).frame(requestId: rid)
        let answer: IPCMessage
        do {
            answer = try await withCheckedThrowingContinuation { (c: CheckedContinuation<IPCMessage, Error>) in
                let current = state.withLock { s -> Bool in
                    guard s.channel === channel else { return false }
                    s.opens[rid] = c
                    return true
                }
                guard current else { return c.resume(throwing: GatewayError.connectionLost) }
                channel.writeAndFlush(frame).whenFailure { [state] _ in
                    state.withLock { $0.opens.removeValue(forKey: rid) }?.resume(throwing: GatewayError.connectionLost)
                }
            }
        } catch {
            forget()
            session.ended("connection to the broker lost")
            throw error
        }
        guard case .gwOpened = answer else {
            forget()
            if case .error(let code, let message) = answer {
                session.ended("refused")
                throw GatewayError.refused(code: code, message: message)
            }
            session.ended("unexpected answer")
            throw GatewayError.connectionLost
        }
        return session
    }

    // MARK: Connections

    private func connectLoop() async {
        var backoff = options.backoff
        var lastReason = ""
        while !isStopping {
            let (registered, reason) = await connectOnce()
            if isStopping { break }
            if registered { backoff.reset() }
            let delay = backoff.next()
            let seconds = String(format: "%.2f", Double(delay.nanoseconds) / 1e9)
            // A broker that stays away is logged once per streak, then at debug.
            let level: Logger.Level = (registered || reason != lastReason) ? .warning : .debug
            logger.log(level: level, "connection ended: \(reason); reconnecting in \(seconds) s")
            lastReason = reason
            await sleep(delay)
        }
    }

    /// One connection, from connect to close. Returns whether it got as far as REGISTERED,
    /// and why it ended.
    private func connectOnce() async -> (Bool, String) {
        let asyncChannel: NIOAsyncChannel<IPCFrame, IPCFrame>
        do {
            let maxFrame = options.maxFrame
            asyncChannel = try await ClientBootstrap(group: group).connect(unixDomainSocketPath: socketPath) { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(BrokerFrameHandler(localMaxFrame: maxFrame))
                    return try NIOAsyncChannel<IPCFrame, IPCFrame>(wrappingChannelSynchronously: ch)
                }
            }
        } catch {
            return (false, "cannot connect to \(socketPath): \(error)")
        }
        let channel = asyncChannel.channel
        var session = SidecarSession(name: name, version: options.version, localMaxFrame: options.maxFrame,
                                     capabilities: handlers.capabilities)
        var registered = false
        var reason = "the broker closed the connection"
        let timedOut = Locked(false)
        do {
            try await asyncChannel.executeThenClose { inbound, _ in
                let stopping = state.withLock { s -> Bool in
                    s.channel = channel
                    return s.stopping
                }
                defer {
                    let (opens, sessions) = state.withLock { s in
                        s.channel = nil
                        s.welcomed = false
                        s.serving = false
                        defer {
                            s.opens = [:]
                            s.sessions = [:]
                        }
                        return (s.opens.values, s.sessions.values)
                    }
                    // Sessions never survive their connection (SPEC 7.5).
                    for c in opens { c.resume(throwing: GatewayError.connectionLost) }
                    for session in sessions { session.ended("connection to the broker lost") }
                }
                if stopping {
                    reason = "shutting down"
                    return
                }
                let timer = channel.eventLoop.scheduleTask(in: options.handshakeTimeout) {
                    timedOut.withLock { $0 = true }
                    channel.close(promise: nil)
                }
                defer { timer.cancel() }
                try await channel.writeAndFlush(session.hello()).get()
                for try await frame in inbound {
                    for action in session.receive(frame) {
                        switch action {
                        case .send(let message, let id):
                            await BrokerLink(channel: channel, maxFrame: session.maxFrame).send(message, id: id, logger: logger)
                        case .welcomed(let w):
                            state.withLock { s in
                                s.welcomed = true
                                s.maxFrame = w.maxFrame
                                s.protocolVersion = w.version
                            }
                            logger.info("welcomed by the broker", metadata: [
                                "sidecar.broker_version": "\(w.brokerVersion)", "sidecar.node": "\(w.node)",
                                "sidecar.protocol": "\(w.version)", "sidecar.max_frame": "\(w.maxFrame)",
                            ])
                        case .registered(let hooks):
                            timer.cancel()
                            registered = true
                            registeredLog(hooks: hooks)
                            let stop = state.withLock { s -> Bool in
                                s.serving = true
                                s.registrations += 1
                                return s.stopping
                            }
                            if stop { return }
                        case .serve(let request, let id):
                            let link = BrokerLink(channel: channel, maxFrame: session.maxFrame)
                            jobSink.yield { await self.serve(request, id: id, link: link) }
                        case .deliver(let events):
                            enqueue(events)
                        case .close(let why, let goodbye):
                            reason = why
                            logger.error("closing the connection: \(why)")
                            if goodbye {
                                try? await channel.writeAndFlush(IPCMessage.goodbye(reason: why).frame(requestId: 0)).get()
                            }
                            return
                        case .ignore(let what):
                            logger.debug("ignored: \(what)")
                        case .gatewayReply(let message, let id):
                            guard let waiter = state.withLock({ $0.opens.removeValue(forKey: id) }) else {
                                reason = "\(message.kind) with id \(id) matches no outstanding request"
                                logger.error("closing the connection: \(reason)")
                                try? await channel.writeAndFlush(IPCMessage.goodbye(reason: reason).frame(requestId: 0)).get()
                                return
                            }
                            waiter.resume(returning: message)
                        case .gatewayData(let id, let data):
                            state.withLock { $0.sessions[id] }?.received(data)
                        case .gatewayClosed(let id, let why):
                            state.withLock { $0.sessions.removeValue(forKey: id) }?.ended(why)
                        }
                    }
                }
            }
        } catch let error as IPCError {
            reason = "protocol violation by the broker: \(error)"
            logger.error("closing the connection: \(reason)")
        } catch {
            reason = "\(error)"
        }
        if timedOut.withLock({ $0 }) && !registered {
            reason = "no WELCOME and REGISTERED within \(options.handshakeTimeout.nanoseconds / 1_000_000) ms"
        }
        return (registered, reason)
    }

    private func registeredLog(hooks: [String]) {
        logger.info("registered", metadata: ["sidecar.hooks": "\(hooks.joined(separator: ","))"])
        let asked = handlers.capabilities.compactMap { c -> String? in
            if case .hook(let name, _, _) = c { return name }
            return nil
        }
        for name in Set(asked).subtracting(hooks).sorted() {
            logger.warning("the broker did not accept hook \(name)")
        }
    }

    /// Waits `delay`, or less when `shutdown()` is called meanwhile.
    private func sleep(_ delay: TimeAmount) async {
        let loop = group.next()
        let promise = loop.makePromise(of: Void.self)
        let proceed = state.withLock { s -> Bool in
            guard !s.stopping else { return false }
            s.wake = promise
            return true
        }
        guard proceed else { return promise.succeed(()) }
        let timer = loop.scheduleTask(in: delay) { [state] in
            let wake = state.withLock { s -> EventLoopPromise<Void>? in
                defer { s.wake = nil }
                return s.wake
            }
            wake?.succeed(())
        }
        try? await promise.futureResult.get()
        timer.cancel()
    }

    // MARK: Requests and hooks

    private func serve(_ request: SidecarSession.Request, id: UInt32, link: BrokerLink) async {
        let reply: IPCMessage
        do {
            reply = try await answer(request)
        } catch {
            logger.error("handler failed, answering ERROR 7", metadata: ["sidecar.request_id": "\(id)", "error": "\(error)"])
            reply = .error(code: IPCErrorCode.internalError.rawValue, message: "\(error)")
        }
        await link.send(reply, id: id, logger: logger)
    }

    private func answer(_ request: SidecarSession.Request) async throws -> IPCMessage {
        func unsupported(_ what: String) -> IPCMessage {
            .error(code: IPCErrorCode.unsupported.rawValue, message: "\(what) is not served by \(name)")
        }
        switch request {
        case .authn(let r):
            guard let a = handlers.authenticator else { return unsupported("authentication") }
            let answer = try await a.handle(r)
            let (version, warn) = state.withLock { s -> (UInt16, Bool) in
                let warn = s.protocolVersion < IPCVersion.subscriptions && answer.decision == .allow
                    && !answer.subscriptions.isEmpty && !s.warnedNoSubscriptions
                if warn { s.warnedNoSubscriptions = true }
                return (s.protocolVersion, warn)
            }
            if warn {
                logger.warning("the broker speaks protocol version \(version): subscriptions in authentication answers are dropped")
            }
            return answer.message(version: version)
        case .authz(let r):
            guard let a = handlers.authorizer else { return unsupported("authorization") }
            return try await a.handle(r).message
        case .publish(let client, let message):
            guard let f = handlers.publishFilter else { return PublishAction.continue.message }
            return try await f.handle(client, message).message
        case .ctl(let command, let args):
            guard let c = handlers.commands[command] else { return unsupported("command \(command)") }
            return try await c.run(args, self).message
        }
    }

    private func enqueue(_ events: [IPCHookEvent]) {
        guard case .dropped = hookSink.yield(events) else { return }
        let n = state.withLock { s -> Int in
            s.droppedHookBatches += 1
            return s.droppedHookBatches
        }
        if n == 1 || n % 1000 == 0 {
            logger.warning("hook handlers fall behind, event batches dropped", metadata: ["sidecar.dropped_batches": "\(n)"])
        }
    }

    /// One batch at a time, each hook's events in the broker's order.
    private func deliverHooks() async {
        for await batch in hookBatches {
            var names: [String] = []
            var byHook: [String: [IPCHookEvent]] = [:]
            for event in batch {
                if byHook[event.hook] == nil { names.append(event.hook) }
                byHook[event.hook, default: []].append(event)
            }
            for name in names {
                guard let handler = handlers.hooks[name] else {
                    logger.debug("events for a hook with no handler", metadata: ["sidecar.hook": "\(name)"])
                    continue
                }
                await handler(byHook[name]!)
            }
        }
    }

    // MARK: Signals

    private func installSignalHandlers() {
        var sources: [DispatchSourceSignal] = []
        for (sig, label) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.shutdown(reason: label) }
            source.resume()
            sources.append(source)
        }
        state.withLock { $0.signalSources = sources }
    }
}
