import ArgumentParser
import Foundation

/// `%i` in a topic stands for the client's index.
func expand(_ pattern: String, _ i: Int) -> String {
    pattern.replacingOccurrences(of: "%i", with: String(i))
}

/// Runs a plan and prints the result; exits non-zero when the connections failed.
func runAndPrint(_ plan: TrafficPlan, _ conn: ConnectionOptions, _ traffic: TrafficOptions) async throws {
    let result = try await TrafficRunner(plan: plan, conn: conn, traffic: traffic).run()
    result.print(json: conn.json)
}

struct Pub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish from N connections (closed loop: as fast as acks and the socket allow; or --rate).")
    @OptionGroup var conn: ConnectionOptions
    @OptionGroup var traffic: TrafficOptions
    @Option(name: .shortAndLong, help: "Publishers.") var count = 1
    @Option(name: .shortAndLong, help: "Topic; %i is the publisher's index.") var topic = "swiftlet-bench/%i"

    func run() async throws {
        let plan = TrafficPlan(scenario: "pub", publisherTopics: (0..<count).map { expand(topic, $0) },
                               subscriberFilters: [], fanout: 1)
        try await runAndPrint(plan, conn, traffic)
    }
}

struct Sub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Subscribe from N connections and measure what arrives (latency works across processes on one host).")
    @OptionGroup var conn: ConnectionOptions
    @OptionGroup var traffic: TrafficOptions
    @Option(name: .shortAndLong, help: "Subscribers.") var count = 1
    @Option(name: .shortAndLong, help: "Topic filter; %i is the subscriber's index.") var topic = "swiftlet-bench/#"

    func run() async throws {
        let plan = TrafficPlan(scenario: "sub", publisherTopics: [], subscriberFilters: (0..<count).map { expand(topic, $0) },
                               fanout: 1)
        try await runAndPrint(plan, conn, traffic)
    }
}

struct Pairs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "N one-to-one pairs: publisher i -> its own topic -> subscriber i (-c 1: one-to-one).")
    @OptionGroup var conn: ConnectionOptions
    @OptionGroup var traffic: TrafficOptions
    @Option(name: .shortAndLong, help: "Pairs.") var count = 1
    @Option(name: .shortAndLong, help: "Topic of pair %i.") var topic = "swiftlet-bench/pairs/%i"
    @Flag(help: "One connection per pair: it subscribes to its topic and publishes to it.")
    var sameConnection = false
    @Option(help: "Subscriptions made first on other connections (a fleet: fleet/<n>/cmd, fleet/<n>/+/status, fleet/<n>/config/# in turn); none of them matches the pairs' topics.")
    var backgroundSubscriptions = 0
    @Option(help: "Connections holding the background subscriptions.")
    var backgroundConnections = 100

    func run() async throws {
        let topics = (0..<count).map { expand(topic, $0) }
        var plan = TrafficPlan(scenario: count == 1 ? "one-to-one" : "pairs", publisherTopics: topics,
                               subscriberFilters: topics, fanout: 1)
        plan.sameConnection = sameConnection
        plan.backgroundSubscriptions = backgroundSubscriptions
        plan.backgroundConnections = max(1, backgroundConnections)
        try await runAndPrint(plan, conn, traffic)
    }
}

struct FanIn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanin", abstract: "N publishers -> 1 subscriber on a wildcard filter.")
    @OptionGroup var conn: ConnectionOptions
    @OptionGroup var traffic: TrafficOptions
    @Option(name: .shortAndLong, help: "Publishers.") var count = 100
    @Option(name: .shortAndLong, help: "Topic prefix: publishers use <prefix>/<i>, the subscriber <prefix>/+.")
    var topic = "swiftlet-bench/fanin"

    func run() async throws {
        let plan = TrafficPlan(scenario: "fanin", publisherTopics: (0..<count).map { "\(topic)/\($0)" },
                               subscriberFilters: ["\(topic)/+"], fanout: 1)
        try await runAndPrint(plan, conn, traffic)
    }
}

struct FanOut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout", abstract: "1 publisher -> N subscribers of its topic.")
    @OptionGroup var conn: ConnectionOptions
    @OptionGroup var traffic: TrafficOptions
    @Option(name: .shortAndLong, help: "Subscribers.") var count = 100
    @Option(name: .shortAndLong, help: "Topic.") var topic = "swiftlet-bench/fanout"

    func run() async throws {
        let plan = TrafficPlan(scenario: "fanout", publisherTopics: [topic],
                               subscriberFilters: Array(repeating: topic, count: count), fanout: count)
        try await runAndPrint(plan, conn, traffic)
    }
}
