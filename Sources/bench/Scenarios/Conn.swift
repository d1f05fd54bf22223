import ArgumentParser

/// Opens N connections (at --connect-rate, or as fast as --concurrency allows), holds them
/// idle, reports the connection rate and, with --broker-pid, the broker's resident memory
/// per connection.
struct Conn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open N connections at a rate and hold them (connection rate, errors, broker RSS per connection).")
    @OptionGroup var conn: ConnectionOptions
    @Option(name: .shortAndLong, help: "Connections.") var count = 1000
    @Option(help: "Seconds to hold the connections after the last CONNACK (RSS is read at the end).")
    var hold: Double = 5
    @Option(help: "Topic filter each connection subscribes to after CONNACK (%i: its index); the rate then counts CONNECT and SUBSCRIBE.")
    var subscribe: String?

    func run() async throws {
        raiseOpenFileLimit()
        let version = try conn.version()
        let bench = BenchContext(threads: conn.threads)
        bench.tls = try Transport.makeTLSContext(conn)
        let broker0 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        let cpu0 = CPUSample.now()
        let prefix = conn.clientIdStem
        let base = ClientConfig(clientId: "", version: version, username: conn.username, password: conn.password,
                                keepalive: conn.keepalive, connectTimeout: conn.connectTimeout)
        let outcome = await Connector(bench: bench, options: conn).connect(count: count) { i in
            var c = base
            c.clientId = "\(prefix)c\(i)"
            if let f = subscribe { c.subscribe = expand(f, i) }
            if conn.numberedUsers, let u = conn.username { c.username = "\(u)\(i)" }
            return c
        }
        try await sleep(seconds: hold)
        let broker1 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        let cpu1 = CPUSample.now()
        let s = try await bench.snapshot()
        await Connector.disconnectAll(outcome.clients)
        await bench.shutdown()

        let wall = Double(cpu1.wall - cpu0.wall) / 1e9
        let connections = RunResult.Connections(
            attempted: outcome.attempted, connected: outcome.connected, errors: outcome.failed,
            seconds: outcome.seconds.rounded(toPlaces: 3), perSecond: outcome.perSecond.rounded(),
            firstErrors: outcome.firstErrors, disconnects: s.disconnects)
        var result = RunResult(
            scenario: "conn", label: conn.label, broker: "\(conn.host):\(conn.port)", mqttVersion: version.description,
            publishers: 0, subscribers: 0, durationSeconds: wall.rounded(toPlaces: 3), protocolErrors: s.protocolErrors,
            connections: connections, bench: benchCPU(cpu0, cpu1, threads: conn.threads), date: isoDate())
        if conn.connectRate > 0 { result.targetRate = conn.connectRate }
        if let pid = conn.brokerPid, let b0 = broker0, let b1 = broker1 {
            let cpu = b1.cpuSeconds - b0.cpuSeconds
            var bp = RunResult.BrokerProcess(
                pid: pid, cpuSeconds: cpu.rounded(toPlaces: 3), coresUsed: (cpu / wall).rounded(toPlaces: 3),
                cpuSecondsPerMillionMessages: nil, rssBeforeBytes: b0.rssBytes, rssAfterBytes: b1.rssBytes,
                rssPerConnectionBytes: nil)
            if outcome.connected > 0 {
                bp.rssPerConnectionBytes = (Double(b1.rssBytes - b0.rssBytes) / Double(outcome.connected)).rounded()
            }
            result.brokerProcess = bp
        }
        result.print(json: conn.json)
        if outcome.failed > 0 { throw ExitCode(1) }
    }
}
