import NIOCore
import NIOPosix

/// The result of opening a set of connections.
struct ConnectOutcome {
    /// Clients that got their CONNACK (and SUBACK), by index; nil where it failed.
    var clients: [MQTTClient?]
    var attempted: Int
    var failed: Int
    /// Seconds from the first attempt to the last successful CONNACK/SUBACK.
    var seconds: Double
    var firstErrors: [String]

    var connected: Int { attempted - failed }
    var perSecond: Double { seconds > 0 ? Double(connected) / seconds : 0 }
}

/// Opens connections at a given rate (or as fast as `concurrency` attempts in progress
/// allow), spreading them over the event loops and, optionally, over source addresses.
///
/// Each loop opens its own share of the connections with its share of the concurrency, from
/// future callbacks on that loop: no Swift task per connection, so an attempt costs no hop
/// between the loop and Swift's cooperative threads (two thread wake-ups per connection,
/// most of the generator's CPU in the CONNECT-rate run). The broker's address is resolved
/// once, not per connection through happy eyeballs and getaddrinfo.
struct Connector {
    let bench: BenchContext
    let options: ConnectionOptions

    typealias Done = (index: Int, client: MQTTClient?, error: String?, at: UInt64)

    func connect(count: Int, loops: [EventLoop]? = nil, config: @escaping @Sendable (Int) -> ClientConfig) async -> ConnectOutcome {
        let t0 = monotonicNanos()
        guard count > 0 else {
            return ConnectOutcome(clients: [], attempted: 0, failed: 0, seconds: 0, firstErrors: [])
        }
        let loopOf = loops ?? (0..<count).map { bench.loops[$0 % bench.loops.count] }
        let target: SocketAddress
        let sources: [SocketAddress]
        do {
            target = try Self.resolve(options.host, port: options.port)
            sources = try options.sourceAddresses().map { try SocketAddress(ipAddress: $0, port: 0) }
        } catch {
            return ConnectOutcome(clients: [MQTTClient?](repeating: nil, count: count), attempted: count, failed: count,
                                  seconds: 0, firstErrors: ["\(error)"])
        }
        // Indices per loop, in order, and each loop's share of the attempts in progress.
        var order: [ObjectIdentifier] = []
        var byLoop: [ObjectIdentifier: (loop: EventLoop, indices: [Int])] = [:]
        for i in 0..<count {
            let id = ObjectIdentifier(loopOf[i])
            if byLoop[id] == nil {
                order.append(id)
                byLoop[id] = (loopOf[i], [])
            }
            byLoop[id]!.indices.append(i)
        }
        let concurrency = max(1, min(options.concurrency, count))
        var futures: [EventLoopFuture<[Done]>] = []
        var given = 0
        for (n, id) in order.enumerated() {
            let (loop, indices) = byLoop[id]!
            // Proportional share, the remainder to the last loop; at least one each.
            let share = n == order.count - 1 ? concurrency - given : concurrency * indices.count / count
            given += share
            let opener = LoopOpener(connector: self, loop: loop, indices: indices, slots: max(1, min(share, indices.count)),
                                    t0: t0, target: target, sources: sources, config: config)
            futures.append(loop.flatSubmit { opener.start() })
        }
        var results: [Done] = []
        for f in futures { results.append(contentsOf: (try? await f.get()) ?? []) }
        var clients = [MQTTClient?](repeating: nil, count: count)
        var failed = 0
        var last = t0
        var errors: [String] = []
        for r in results {
            if let c = r.client {
                clients[r.index] = c
                last = max(last, r.at)
            } else {
                failed += 1
                if errors.count < 5, let e = r.error { errors.append(e) }
            }
        }
        failed += count - results.count
        return ConnectOutcome(clients: clients, attempted: count, failed: failed,
                              seconds: Double(last - t0) / 1e9, firstErrors: errors)
    }

    /// An IP address as is; a host name through the resolver, once.
    static func resolve(_ host: String, port: Int) throws -> SocketAddress {
        if let a = try? SocketAddress(ipAddress: host, port: port) { return a }
        return try SocketAddress.makeAddressResolvingHost(host, port: port)
    }

    /// One connection on `el`: TCP connect, then CONNACK (and SUBACK). Runs on `el`.
    fileprivate func connectOne(_ config: ClientConfig, on el: EventLoop, to target: SocketAddress,
                                source: SocketAddress?) -> EventLoopFuture<MQTTClient> {
        let client = MQTTClient(config: config, bench: bench, eventLoop: el)
        var bootstrap = ClientBootstrap(group: el)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
            .connectTimeout(.milliseconds(Int64(config.connectTimeout * 1000)))
            .channelInitializer { [options, tls = bench.tls] ch in
                ch.eventLoop.makeCompletedFuture { try Transport.setUp(ch, client: client, tls: tls, options: options) }
            }
        if let source { bootstrap = bootstrap.bind(to: source) }
        return bootstrap.connect(to: target)
            .flatMapError { error in
                // The handler never saw the connection: count the failure on its loop, and
                // settle the client's promises (debug builds trap on a leaked promise).
                client.counters.c.connectErrors += 1
                client.abandon(error)
                return el.makeFailedFuture(error)
            }
            .flatMap { _ in client.ready.futureResult.map { client } }
    }

    /// DISCONNECT and close every client; waits for the closes.
    static func disconnectAll(_ clients: [MQTTClient?]) async {
        var futures: [EventLoopFuture<Void>] = []
        for case let c? in clients {
            futures.append(c.eventLoop.flatSubmit { c.disconnect() })
        }
        for f in futures { _ = try? await f.get() }
    }
}

/// Opens one loop's share of the connections, `slots` at a time, paced by the rate when
/// one is set. Confined to its loop.
private final class LoopOpener: @unchecked Sendable {
    let connector: Connector
    let loop: EventLoop
    let indices: [Int]
    let slots: Int
    let t0: UInt64
    let target: SocketAddress
    let sources: [SocketAddress]
    let config: @Sendable (Int) -> ClientConfig
    let done: EventLoopPromise<[Connector.Done]>
    var next = 0
    var active = 0
    var results: [Connector.Done] = []

    init(connector: Connector, loop: EventLoop, indices: [Int], slots: Int, t0: UInt64, target: SocketAddress,
         sources: [SocketAddress], config: @escaping @Sendable (Int) -> ClientConfig) {
        self.connector = connector
        self.loop = loop
        self.indices = indices
        self.slots = slots
        self.t0 = t0
        self.target = target
        self.sources = sources
        self.config = config
        self.done = loop.makePromise()
        results.reserveCapacity(indices.count)
    }

    func start() -> EventLoopFuture<[Connector.Done]> {
        for _ in 0..<slots { openNext() }
        return done.futureResult
    }

    private func openNext() {
        guard next < indices.count else {
            if active == 0 { done.succeed(results) }
            return
        }
        let i = indices[next]
        next += 1
        active += 1
        let rate = connector.options.connectRate
        if rate > 0 {
            let due = t0 + UInt64(Double(i) / rate * 1e9)
            let now = monotonicNanos()
            if due > now {
                loop.scheduleTask(in: .nanoseconds(Int64(due - now))) { self.open(i) }
                return
            }
        }
        open(i)
    }

    private func open(_ i: Int) {
        let source = sources.isEmpty ? nil : sources[i % sources.count]
        connector.connectOne(config(i), on: loop, to: target, source: source).whenComplete { result in
            switch result {
            case .success(let c): self.results.append((i, c, nil, monotonicNanos()))
            case .failure(let e): self.results.append((i, nil, "\(e)", monotonicNanos()))
            }
            self.active -= 1
            if case .failure = result {
                // A connect that fails at once (socket() out of file descriptors) completes
                // before `open` returns: opening the next one from here would recurse once
                // per failure, and thousands of them overflowed the loop's stack.
                self.loop.execute { self.openNext() }
            } else {
                self.openNext()
            }
        }
    }
}
