import NIOConcurrencyHelpers
import ServiceLifecycle

/// One long-running part of the broker (the durable store, the sidecar socket, the supervisor,
/// the ctl socket, the listeners, $SYS). `Broker` lists them in start order; they stop in the
/// reverse order, each after the ones that depend on it.
///
/// A part gets what it needs when it is made (configuration, a logger, the registries it
/// fills); none of them holds the `Broker`.
public protocol BrokerPart: AnyObject, Sendable {
    var name: String { get }
    func start() async throws
    func stop() async
}

/// A part made of two functions, for the steps that are the broker core's own (opening the
/// store and restoring sessions from it, binding listeners, publishing $SYS).
final class FunctionPart: BrokerPart, @unchecked Sendable {
    let name: String
    private let onStart: @Sendable () async throws -> Void
    private let onStop: @Sendable () async -> Void

    init(_ name: String, start: @escaping @Sendable () async throws -> Void, stop: @escaping @Sendable () async -> Void) {
        self.name = name
        self.onStart = start
        self.onStop = stop
    }

    func start() async throws { try await onStart() }
    func stop() async { await onStop() }
}

/// Opens once: the part before has started (true) or will never start (false).
final class Readiness: @unchecked Sendable {
    private enum State {
        case pending(CheckedContinuation<Bool, Never>?)
        case done(Bool)
    }

    private let lock = NIOLock()
    private var state = State.pending(nil)

    func open() { finish(true) }
    func fail() { finish(false) }

    private func finish(_ value: Bool) {
        let waiter: CheckedContinuation<Bool, Never>? = lock.withLock {
            guard case .pending(let w) = state else { return nil }
            state = .done(value)
            return w
        }
        waiter?.resume(returning: value)
    }

    /// Waits for `open` or `fail` (one waiter: the next part); false when cancelled.
    func wait() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let done: Bool? = lock.withLock {
                    switch state {
                    case .done(let v): return v
                    case .pending:
                        if Task.isCancelled { state = .done(false); return false }
                        state = .pending(c)
                        return nil
                    }
                }
                if let done { c.resume(returning: done) }
            }
        } onCancel: {
            finish(false)
        }
    }
}

/// A `BrokerPart` as a swift-service-lifecycle `Service`: it starts once the part before it
/// has started, runs until graceful shutdown, then stops. In one `ServiceGroup` the group
/// shuts services down in reverse order, each waiting for the one after it.
struct BrokerPartService: Service, CustomStringConvertible {
    let part: any BrokerPart
    let after: Readiness?
    let ready: Readiness

    var description: String { part.name }

    func run() async throws {
        if let after {
            // A shutdown (or the failure of an earlier part) while waiting: never started.
            let go = (try? await cancelWhenGracefulShutdown { await after.wait() }) ?? false
            guard go else {
                ready.fail()
                // Never started: still return only when the group asks. A service that returns
                // while the group is shutting another one down makes ServiceGroup cancel every
                // service, and the started parts would then stop all at once, out of order
                // (the event loops before the supervisor that still needs them).
                try? await gracefulShutdown()
                return
            }
        }
        do {
            try await part.start()
        } catch {
            ready.fail()
            throw error
        }
        ready.open()
        try? await gracefulShutdown()
        await part.stop()
    }
}

extension Broker {
    /// The broker's parts as services for one `ServiceGroup`, in start order. The group's
    /// graceful shutdown (SIGTERM/SIGINT) stops them in reverse: $SYS, listeners (and their
    /// clients), ctl, supervisor, sidecar socket, store, then the event loops.
    public var services: [ServiceGroupConfiguration.ServiceConfiguration] {
        var previous: Readiness?
        return parts.map { part in
            let ready = Readiness()
            defer { previous = ready }
            return .init(service: BrokerPartService(part: part, after: previous, ready: ready),
                         successTerminationBehavior: .gracefullyShutdownGroup,
                         failureTerminationBehavior: .gracefullyShutdownGroup)
        }
    }
}
