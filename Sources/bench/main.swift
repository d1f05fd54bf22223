import ArgumentParser

/// swiftlet-bench: a load generator for any MQTT broker (3.1.1 and 5.0, QoS 0/1/2).
struct SwiftletBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftlet-bench",
        abstract: "MQTT load generator: connections, publishers, subscribers and their composites.",
        discussion: """
            Every message carries its send time (monotonic ns) in the first 8 bytes of the payload; \
            subscribers report latency from it. Composite runs (pairs, fanin, fanout) are closed loop \
            unless --rate is given: each publisher keeps at most its share of --window deliveries in \
            flight end to end. Add --json for one JSON object per run, --broker-pid to include the \
            broker's CPU and memory.
            """,
        subcommands: [Conn.self, Pub.self, Sub.self, Pairs.self, FanIn.self, FanOut.self, RetainedRun.self])
}

/// Parses and runs the command; `AsyncParsableCommand.main` would do the same, but top-level
/// code resolves `main()` to ParsableCommand's synchronous one, which never awaits `run()`.
func runBench() async {
    do {
        var command = try await SwiftletBench.asyncParseAsRoot()
        if var asyncCommand = command as? AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        SwiftletBench.exit(withError: error)
    }
}

await runBench()
