import Atomics
import MQTTCodec
import NIOCore

/// The shape of a message run: who publishes where, who subscribes to what.
struct TrafficPlan {
    var scenario: String
    /// Topic of each publisher.
    var publisherTopics: [String]
    /// Filter of each subscriber.
    var subscriberFilters: [String]
    /// Deliveries of one message to subscribers of this process.
    var fanout: Int
    /// Publisher i is subscriber i's connection (pairs --same-connection).
    var sameConnection = false
    /// Subscriptions held by other connections before the traffic starts (none matches).
    var backgroundSubscriptions = 0
    var backgroundConnections = 100

    /// Background filter n: a fleet of devices, each with its command topic and two wildcards.
    static func backgroundFilter(_ n: Int) -> String {
        switch n % 3 {
        case 0: return "fleet/\(n)/cmd"
        case 1: return "fleet/\(n)/+/status"
        default: return "fleet/\(n)/config/#"
        }
    }
}

/// Runs a plan: subscribers connect and subscribe, publishers connect, traffic flows for
/// the warm-up and the measured duration, then publishing stops and the run drains.
struct TrafficRunner {
    let plan: TrafficPlan
    let conn: ConnectionOptions
    let traffic: TrafficOptions

    func run() async throws -> RunResult {
        raiseOpenFileLimit()
        let version = try conn.version()
        let bench = BenchContext(threads: conn.threads)
        bench.tls = try Transport.makeTLSContext(conn)
        let P = plan.publisherTopics.count
        let S = plan.subscriberFilters.count
        // Subscribers start on the loop after the publishers', so a pair spans two loops.
        let subLoops = (0..<S).map { bench.loops[($0 + 1) % bench.loops.count] }
        let pubLoops = plan.sameConnection ? subLoops : (0..<P).map { bench.loops[$0 % bench.loops.count] }
        let closedLoopEndToEnd = P > 0 && S > 0
        if closedLoopEndToEnd {
            let perPublisher = max(1, traffic.effectiveWindow / P)
            bench.flows = pubLoops.enumerated().map {
                PublisherFlow(index: $0.offset, eventLoop: $0.element, fanout: plan.fanout, window: perPublisher)
            }
        }
        let connector = Connector(bench: bench, options: conn)
        let prefix = conn.clientIdStem
        let base = ClientConfig(clientId: "", version: version, username: conn.username, password: conn.password,
                                keepalive: conn.keepalive, connectTimeout: conn.connectTimeout, qos: traffic.qosValue)
        let background = try await connectBackground(bench: bench, connector: connector, base: base)
        let filters = plan.subscriberFilters
        let topics = plan.publisherTopics
        let perPublisherRate = traffic.rate > 0 && P > 0 ? traffic.rate / Double(P) : 0
        let size = traffic.size
        let inflight = traffic.inflight
        let same = plan.sameConnection
        let subs = await connector.connect(count: S, loops: subLoops) { i in
            var c = base
            c.clientId = "\(prefix)s\(i)"
            c.subscribe = filters[i]
            c.persistent = traffic.persistentSubscribers
            if same {
                c.publish = PublishConfig(index: i, topic: topics[i], payloadSize: size, rate: perPublisherRate, inflight: inflight)
            }
            return c
        }
        let pubs = await connector.connect(count: same ? 0 : P, loops: pubLoops) { i in
            var c = base
            c.clientId = "\(prefix)p\(i)"
            c.publish = PublishConfig(index: i, topic: topics[i], payloadSize: size, rate: perPublisherRate, inflight: inflight)
            return c
        }
        let publisherClients = same ? subs.clients : pubs.clients
        let allClients = subs.clients + pubs.clients + background.clients
        let connectSeconds = subs.seconds + pubs.seconds
        let attempted = S + (same ? 0 : P)
        var connections = RunResult.Connections(
            attempted: attempted, connected: subs.connected + pubs.connected, errors: subs.failed + pubs.failed,
            seconds: connectSeconds, perSecond: connectSeconds > 0 ? Double(subs.connected + pubs.connected) / connectSeconds : 0,
            firstErrors: subs.firstErrors + pubs.firstErrors, disconnects: 0)
        guard connections.errors == 0 else {
            await Connector.disconnectAll(allClients)
            await bench.shutdown()
            throw BenchError.setup("\(connections.errors) of \(attempted) connections failed: " + connections.firstErrors.joined(separator: "; "))
        }

        // Traffic.
        for (i, c) in publisherClients.enumerated() {
            guard let c else { continue }
            let flow = closedLoopEndToEnd ? bench.flows[i] : nil
            c.eventLoop.execute {
                c.pub?.flow = flow
                c.startPublishing()
            }
        }
        if S > 0 && P == 0 { bench.measuring.store(true, ordering: .relaxed) }
        try await sleep(seconds: traffic.warmup)
        let s0 = try await bench.snapshot()
        bench.measuring.store(true, ordering: .relaxed)
        let cpu0 = CPUSample.now()
        let broker0 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        try await sleep(seconds: traffic.duration)
        let s1 = try await bench.snapshot()
        let cpu1 = CPUSample.now()
        let broker1 = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        bench.publishing.store(false, ordering: .relaxed)
        for case let c? in publisherClients { c.eventLoop.execute { c.pub?.stop() } }

        // Drain: wait for deliveries and acks, up to --drain seconds.
        var s2 = try await bench.snapshot()
        let drainEnd = monotonicNanos() + UInt64(traffic.drain * 1e9)
        while monotonicNanos() < drainEnd {
            let deliveriesDone = !closedLoopEndToEnd || s2.received >= s2.sent * plan.fanout
            let acksDone = traffic.qos == 0 || s2.acked >= s2.sent
            if deliveriesDone && acksDone && P > 0 { break }
            try await sleep(seconds: 0.05)
            s2 = try await bench.snapshot()
        }
        bench.measuring.store(false, ordering: .relaxed)
        await Connector.disconnectAll(allClients)
        await bench.shutdown()

        let wall = Double(cpu1.wall - cpu0.wall) / 1e9
        connections.disconnects = s2.disconnects
        let expected = closedLoopEndToEnd ? s2.sent * plan.fanout : nil
        let receivedInWindow = s1.received - s0.received
        let sentInWindow = s1.sent - s0.sent
        var result = RunResult(
            scenario: plan.scenario, label: conn.label, broker: "\(conn.host):\(conn.port)", mqttVersion: version.description,
            qos: traffic.qos, payloadBytes: traffic.size, publishers: P, subscribers: S,
            targetRate: traffic.rate > 0 ? traffic.rate : nil, durationSeconds: wall.rounded(toPlaces: 3),
            sent: P > 0 ? s2.sent : nil, received: S > 0 ? s2.received : nil, expected: expected,
            sentPerSecond: P > 0 ? (Double(sentInWindow) / wall).rounded() : nil,
            receivedPerSecond: S > 0 ? (Double(receivedInWindow) / wall).rounded() : nil,
            latency: RunResult.latency(s2.latency),
            lost: expected.map { max(0, $0 - s2.received) }, duplicates: S > 0 ? s2.duplicates : nil,
            acked: traffic.qos > 0 && P > 0 ? s2.acked : nil, stalls: P > 0 ? s2.stalls : nil,
            gaps: S > 0 ? s2.gaps : nil, outOfOrder: S > 0 ? s2.outOfOrder : nil,
            protocolErrors: s2.protocolErrors, connections: connections,
            bench: benchCPU(cpu0, cpu1, threads: conn.threads), brokerProcess: nil, date: isoDate())
        if let pid = conn.brokerPid, let b0 = broker0, let b1 = broker1 {
            let messages = S > 0 ? receivedInWindow : sentInWindow
            let cpu = b1.cpuSeconds - b0.cpuSeconds
            result.brokerProcess = .init(
                pid: pid, cpuSeconds: cpu.rounded(toPlaces: 3), coresUsed: (cpu / wall).rounded(toPlaces: 3),
                cpuSecondsPerMillionMessages: messages > 0 ? (cpu / (Double(messages) / 1e6)).rounded(toPlaces: 3) : nil,
                rssBeforeBytes: b0.rssBytes, rssAfterBytes: b1.rssBytes, rssPerConnectionBytes: nil,
                userSeconds: (b1.userSeconds - b0.userSeconds).rounded(toPlaces: 3),
                systemSeconds: (b1.systemSeconds - b0.systemSeconds).rounded(toPlaces: 3))
        }
        result.subscriptions = background.result
        return result
    }

    /// Connects the background subscribers and makes their subscriptions; returns them with
    /// the subscribe rate and the broker's resident memory before and after.
    private func connectBackground(bench: BenchContext, connector: Connector, base: ClientConfig) async throws
        -> (clients: [MQTTClient?], result: RunResult.Subscriptions?)
    {
        let total = plan.backgroundSubscriptions
        guard total > 0 else { return ([], nil) }
        let n = min(plan.backgroundConnections, total)
        let before = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        let prefix = conn.clientIdStem
        let outcome = await connector.connect(count: n) { i in
            var c = base
            c.clientId = "\(prefix)b\(i)"
            c.qos = .atMostOnce
            let first = i * (total / n) + min(i, total % n)
            c.subscribeMany = SubscriptionBatch(first: first, count: total / n + (i < total % n ? 1 : 0)) {
                TrafficPlan.backgroundFilter($0)
            }
            return c
        }
        guard outcome.failed == 0 else {
            await Connector.disconnectAll(outcome.clients)
            await bench.shutdown()
            throw BenchError.setup("\(outcome.failed) background connections failed: " + outcome.firstErrors.joined(separator: "; "))
        }
        let after = conn.brokerPid.flatMap { ProcessSample.read(pid: $0) }
        return (outcome.clients, .init(count: total, connections: n, seconds: outcome.seconds.rounded(toPlaces: 3),
                                       perSecond: outcome.seconds > 0 ? (Double(total) / outcome.seconds).rounded() : 0,
                                       rssBeforeBytes: before?.rssBytes, rssAfterBytes: after?.rssBytes))
    }
}

func benchCPU(_ a: CPUSample, _ b: CPUSample, threads: Int) -> RunResult.BenchCPU {
    let cpu = (b.user - a.user) + (b.system - a.system)
    let wall = Double(b.wall - a.wall) / 1e9
    let used = wall > 0 ? cpu / wall : 0
    let cores = onlineCPUs()
    return .init(threads: threads, cores: cores, cpuSeconds: cpu.rounded(toPlaces: 3), coresUsed: used.rounded(toPlaces: 3),
                 saturated: used >= 0.9 * Double(min(threads, cores)),
                 userSeconds: (b.user - a.user).rounded(toPlaces: 3), systemSeconds: (b.system - a.system).rounded(toPlaces: 3))
}

func sleep(seconds: Double) async throws {
    if seconds > 0 { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }
}
