import ArgumentParser
import MQTTCodec
import NIOCore
import NIOPosix

/// Where to connect and how: shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Broker host.")
    var host = "127.0.0.1"

    @Option(name: .shortAndLong, help: "Broker port.")
    var port = 1883

    @Option(name: [.customShort("V"), .customLong("mqtt")], help: "MQTT version: 3.1.1 (or 4) or 5.")
    var mqttVersion = "3.1.1"

    @Option(name: .shortAndLong, help: "Username (optional).")
    var username: String?

    @Option(name: [.customShort("P"), .long], help: "Password (optional).")
    var password: String?

    @Option(help: "Keep alive in seconds sent in CONNECT (PINGREQ at half of it; 0: none).")
    var keepalive = 300

    @Option(help: "Event loop threads of the generator (default: number of cores).")
    var threads = System.coreCount

    @Option(help: "New connections per second (0: as fast as --concurrency allows).")
    var connectRate: Double = 0

    @Option(help: "Connection attempts in progress at once.")
    var concurrency = 200

    @Option(help: "Bind client sockets to this many source addresses 127.0.0.<base>... (more than 28k connections, or to avoid TIME_WAIT reuse).")
    var sourceIps = 1

    @Option(help: "Last byte of the first source address (127.0.0.N).")
    var sourceIpBase = 1

    @Option(help: "Client id prefix (ids are <prefix><run id>-<role><n>).")
    var clientIdPrefix = "swb"

    @Option(help: "Run id in client ids (default: this process's id). Give the same one to two runs and the second reuses the first's client ids (a broker's auth cache).")
    var runId: String?

    @Flag(help: "conn: one user per connection, named <username><n> (a database with a row per user, every CONNECT a lookup of its own).")
    var numberedUsers = false

    @Option(help: "Seconds to wait for a CONNACK or SUBACK.")
    var connectTimeout: Double = 15

    @Option(help: "PID of the broker: adds its CPU seconds and resident memory to the report (read from /proc).")
    var brokerPid: Int32?

    @Flag(help: "Print one JSON object per run instead of the human line.")
    var json = false

    @Option(help: "Label written into the report (e.g. the broker's name).")
    var label: String?

    @Flag(help: "Connect over TLS (the broker's tls or wss listener).")
    var tls = false

    @Option(help: "With --tls: CA file to verify the broker's certificate (default: no verification).")
    var cafile: String?

    @Option(help: "With --tls: negotiate exactly this TLS version, 1.2 or 1.3 (default: the highest both offer).")
    var tlsVersion: String?

    @Option(help: "MQTT over WebSocket at this path (e.g. /mqtt); with --tls, over wss.")
    var ws: String?

    func version() throws -> ProtocolVersion {
        switch mqttVersion {
        case "3.1.1", "4", "311": return .v3_1_1
        case "5", "5.0": return .v5
        case "3.1", "3": return .v3_1
        default: throw ValidationError("--mqtt must be 3.1.1 or 5")
        }
    }

    /// `<prefix><run id>-`: the start of every client id of this run.
    var clientIdStem: String { "\(clientIdPrefix)\(runId ?? String(getpidValue()))-" }

    func sourceAddresses() -> [String] {
        guard sourceIps > 1 || sourceIpBase != 1 else { return [] }
        return (0..<max(1, sourceIps)).map { i in
            let n = sourceIpBase - 1 + i  // 127.0.0.1 ... 127.0.0.254, then 127.0.1.1 ...
            return "127.0.\(n / 254).\(n % 254 + 1)"
        }
    }
}

/// Message traffic: QoS, size, rate, timing, flow control.
struct TrafficOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "QoS of PUBLISH and SUBSCRIBE (0, 1, 2).")
    var qos = 0

    @Option(name: .shortAndLong, help: "Payload bytes (at least 16: timestamp, publisher, sequence).")
    var size = 64

    @Option(name: .shortAndLong, help: "Total messages per second over all publishers (0: closed-loop maximum).")
    var rate: Double = 0

    @Option(name: .shortAndLong, help: "Seconds of measured traffic.")
    var duration: Double = 10

    @Option(help: "Seconds of traffic before measuring.")
    var warmup: Double = 1

    @Option(help: "Seconds to wait after the last PUBLISH for deliveries and acks.")
    var drain: Double = 2

    @Option(help: "Closed loop: deliveries in flight end to end (sent x subscribers per message, not yet received), over all publishers.")
    var window = 1000

    @Option(help: "Closed loop: cap on the bytes of payload in flight end to end (the window shrinks for large payloads).")
    var windowBytes = 1_048_576

    /// Deliveries in flight, after the byte cap.
    var effectiveWindow: Int { max(1, min(window, windowBytes / max(1, size))) }

    @Flag(help: "Subscribers keep their session (clean session off; 5.0: session expiry 1 h), so a durable broker stores every QoS 1/2 message for them.")
    var persistentSubscribers = false

    @Option(help: "Unacknowledged QoS 1/2 PUBLISH per publisher (0: no limit; 5.0 also caps it at the server's Receive Maximum).")
    var inflight = 0

    func validate() throws {
        guard (0...2).contains(qos) else { throw ValidationError("--qos must be 0, 1 or 2") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16 bytes") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    var qosValue: QoS { QoS(rawValue: UInt8(qos))! }
}
