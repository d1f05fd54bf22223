import ArgumentParser
import NIOCore

/// Stores N retained messages (QoS 1, retain, from several publishers, each waiting for its
/// PUBACKs), reads the broker's resident memory, then connects one subscriber per filter in
/// turn and times how long it takes from its CONNECT until every retained message arrived.
struct RetainedRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retained",
        abstract: "Store N retained messages, then time wildcard subscribers receiving them all (broker RSS before and after).")
    @OptionGroup var conn: ConnectionOptions
    @Option(name: [.customShort("n"), .long], help: "Retained messages (distinct topics).") var count = 10_000
    @Option(help: "Publishers storing them.") var publishers = 4
    @Option(name: .shortAndLong, help: "Payload bytes.") var size = 64
    @Option(name: .shortAndLong, help: "Topic of message %i.") var topic = "devices/%i/state"
    @Option(help: "Filters of the subscribers, one after the other, comma separated.")
    var filters = "#,devices/+/state"
    @Option(help: "Seconds a subscriber may take to receive them all.") var receiveTimeout: Double = 120

    func run() async throws {
        raiseOpenFileLimit()
        let version = try conn.version()
        let bench = BenchContext(threads: conn.threads)
        let connector = Connector(bench: bench, options: conn)
        let prefix = conn.clientIdStem
        let base = ClientConfig(clientId: "", version: version, username: conn.username, password: conn.password,
                                keepalive: conn.keepalive, connectTimeout: conn.connectTimeout)
        let cpu0 = CPUSample.now()
        let broker0 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        let (n, pubs, bytes, pattern) = (count, max(1, publishers), size, topic)
        let load = await connector.connect(count: pubs) { i in
            let share = n / pubs + (i < n % pubs ? 1 : 0)
            let first = i * (n / pubs) + min(i, n % pubs)
            var c = base
            c.clientId = "\(prefix)r\(i)"
            c.retainedLoad = RetainedLoad(first: first, count: share, payloadSize: bytes) { expand(pattern, $0) }
            return c
        }
        let broker1 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        await Connector.disconnectAll(load.clients)
        var receives: [RunResult.Retained.Receive] = []
        var errors = load.firstErrors
        if load.failed == 0 {
            for (k, filter) in filters.split(separator: ",").map(String.init).enumerated() {
                let t0 = monotonicNanos()
                let timeout = receiveTimeout
                let sub = await connector.connect(count: 1) { _ in
                    var c = base
                    c.clientId = "\(prefix)w\(k)"
                    c.subscribe = filter
                    c.receiveTarget = n
                    return c
                }
                guard let client = sub.clients.first ?? nil, let done = client.allReceived else {
                    errors += sub.firstErrors
                    receives.append(.init(filter: filter, seconds: nil, received: 0, error: sub.firstErrors.first))
                    continue
                }
                client.eventLoop.execute { client.failReceiving(after: timeout) }
                do {
                    let at = try await done.get()
                    receives.append(.init(filter: filter, seconds: (Double(at - t0) / 1e9).rounded(toPlaces: 3), received: count))
                } catch {
                    let got = (try? await client.eventLoop.submit { client.receivedLocal }.get()) ?? 0
                    receives.append(.init(filter: filter, seconds: nil, received: got, error: "\(error)"))
                }
                await Connector.disconnectAll(sub.clients)
            }
        }
        let cpu1 = CPUSample.now()
        let broker2 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        let s = try await bench.snapshot()
        await bench.shutdown()

        let wall = Double(cpu1.wall - cpu0.wall) / 1e9
        let connections = RunResult.Connections(
            attempted: load.attempted, connected: load.connected, errors: load.failed, seconds: load.seconds.rounded(toPlaces: 3),
            perSecond: 0, firstErrors: errors, disconnects: s.disconnects)
        var result = RunResult(
            scenario: "retained", label: conn.label, broker: "\(conn.host):\(conn.port)", mqttVersion: version.description,
            payloadBytes: size, publishers: publishers, subscribers: 0, durationSeconds: wall.rounded(toPlaces: 3),
            protocolErrors: s.protocolErrors, connections: connections, bench: benchCPU(cpu0, cpu1, threads: conn.threads),
            date: isoDate())
        result.retained = .init(
            count: count, publishers: publishers, loadSeconds: load.seconds.rounded(toPlaces: 3),
            loadPerSecond: load.seconds > 0 && load.failed == 0 ? (Double(count) / load.seconds).rounded() : 0,
            rssBeforeBytes: broker0?.rssBytes, rssAfterBytes: broker1?.rssBytes, receive: receives)
        if let pid = conn.brokerPid, let b0 = broker0, let b2 = broker2 {
            let cpu = b2.cpuSeconds - b0.cpuSeconds
            result.brokerProcess = .init(
                pid: pid, cpuSeconds: cpu.rounded(toPlaces: 3), coresUsed: (cpu / wall).rounded(toPlaces: 3),
                cpuSecondsPerMillionMessages: nil, rssBeforeBytes: b0.rssBytes, rssAfterBytes: broker1?.rssBytes ?? b2.rssBytes,
                rssPerConnectionBytes: nil)
        }
        result.print(json: conn.json)
        if load.failed > 0 || receives.contains(where: { $0.seconds == nil }) { throw ExitCode(1) }
    }
}
