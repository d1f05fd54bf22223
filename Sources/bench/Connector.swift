import Atomics
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
struct Connector {
    let bench: BenchContext
    let options: ConnectionOptions

    func connect(count: Int, loops: [EventLoop]? = nil, config: @escaping @Sendable (Int) -> ClientConfig) async -> ConnectOutcome {
        let loops = loops ?? (0..<count).map { bench.loops[$0 % bench.loops.count] }
        let sources = options.sourceAddresses()
        let next = ManagedAtomic<Int>(0)
        let rate = options.connectRate
        let t0 = monotonicNanos()
        let workers = max(1, min(options.concurrency, count))
        typealias Done = (index: Int, client: MQTTClient?, error: String?, at: UInt64)
        let results: [Done] = await withTaskGroup(of: [Done].self) { group in
            for _ in 0..<workers {
                group.addTask {
                    var out: [Done] = []
                    while true {
                        let i = next.loadThenWrappingIncrement(ordering: .relaxed)
                        if i >= count { break }
                        if rate > 0 {
                            let due = t0 + UInt64(Double(i) / rate * 1e9)
                            let now = monotonicNanos()
                            if due > now { try? await Task.sleep(nanoseconds: due - now) }
                        }
                        do {
                            let c = try await connectOne(config(i), on: loops[i],
                                                         source: sources.isEmpty ? nil : sources[i % sources.count])
                            out.append((i, c, nil, monotonicNanos()))
                        } catch {
                            out.append((i, nil, "\(error)", monotonicNanos()))
                        }
                    }
                    return out
                }
            }
            var all: [Done] = []
            for await part in group { all.append(contentsOf: part) }
            return all
        }
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
        return ConnectOutcome(clients: clients, attempted: count, failed: failed,
                              seconds: Double(last - t0) / 1e9, firstErrors: errors)
    }

    private func connectOne(_ config: ClientConfig, on el: EventLoop, source: String?) async throws -> MQTTClient {
        let client = MQTTClient(config: config, bench: bench, eventLoop: el)
        var bootstrap = ClientBootstrap(group: el)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
            .connectTimeout(.milliseconds(Int64(config.connectTimeout * 1000)))
            .channelInitializer { [options, tls = bench.tls] ch in
                ch.eventLoop.makeCompletedFuture { try Transport.setUp(ch, client: client, tls: tls, options: options) }
            }
        if let source {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: source, port: 0))
        }
        do {
            _ = try await bootstrap.connect(host: options.host, port: options.port).get()
        } catch {
            // The handler never saw the connection: count the failure on its loop.
            try? await el.submit { client.counters.c.connectErrors += 1 }.get()
            throw error
        }
        try await client.ready.futureResult.get()
        return client
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
