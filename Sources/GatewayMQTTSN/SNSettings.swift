import GatewayKit
import StrictTOML

/// `[mqttsn]` of etc/plugins/gateways.toml (emqttd_sn: `{listener, {1884, []}}`, plus what
/// MQTT-SN 1.2 leaves to the gateway).
public struct SNSettings: Sendable {
    public var enabled = true
    /// UDP.
    public var listener = ListenAddress(port: 1884)
    /// QoS -1 publishes (no connection; predefined ids and short names only).
    public var enableQoS3 = true
    /// ADVERTISE every this many seconds to `advertiseAddress`; 0: never (SEARCHGW is always answered).
    public var advertiseInterval = 0
    public var advertiseAddress = ListenAddress(host: "255.255.255.255", port: 1884)
    /// Clients (addresses) with a state in the gateway; a CONNECT beyond is answered congestion.
    public var maxClients = 10_000
    /// Datagrams per second accepted from one IP address (a burst of twice that); the rest is dropped and counted.
    public var rateLimit = 200
    public var channel = SNChannelConfig()

    public init() {}

    public init(_ s: ConfigSection) throws {
        try s.checkKeys(allowed: ["enabled", "listener", "gateway_id", "enable_qos3", "advertise_interval", "advertise_address",
                                  "username", "password", "retry_interval", "max_retries", "max_clients", "max_topics",
                                  "max_queued", "receive_maximum", "session_expiry", "max_payload", "rate_limit", "predefined"])
        enabled = try s.bool("enabled") ?? enabled
        listener = try ListenAddress.read(s, "listener", default: listener)
        if let g = try s.int("gateway_id", range: 0...255) { channel.gatewayId = UInt8(g) }
        enableQoS3 = try s.bool("enable_qos3") ?? enableQoS3
        advertiseInterval = try s.int("advertise_interval", range: 0...65_535) ?? advertiseInterval
        advertiseAddress = try ListenAddress.read(s, "advertise_address", default: advertiseAddress)
        channel.username = try s.string("username")
        channel.password = try s.string("password")
        channel.retryIntervalMs = try s.int("retry_interval", range: 100...600_000) ?? channel.retryIntervalMs
        channel.maxRetries = try s.int("max_retries", range: 0...100) ?? channel.maxRetries
        maxClients = try s.int("max_clients", range: 1...1_000_000) ?? maxClients
        channel.maxTopics = try s.int("max_topics", range: 1...65_000) ?? channel.maxTopics
        channel.maxQueued = try s.int("max_queued", range: 1...1_000_000) ?? channel.maxQueued
        if let r = try s.int("receive_maximum", range: 1...65_535) { channel.receiveMaximum = UInt16(r) }
        if let e = try s.int("session_expiry", range: 0...Int(UInt32.max)) { channel.sessionExpiry = UInt32(e) }
        channel.maxPayload = try s.int("max_payload", range: 1...65_000) ?? channel.maxPayload
        rateLimit = try s.int("rate_limit", range: 1...1_000_000) ?? rateLimit
        if let p = try s.section("predefined") {
            for key in p.keys {
                guard let id = UInt16(key), id > 0, id < 0xFFFF else {
                    throw p.error(key, "a predefined topic id is a number from 1 to 65534")
                }
                guard let name = try p.string(key), !name.isEmpty else { throw p.error(key, "must be a topic name") }
                channel.predefined[id] = name
            }
        }
    }
}

/// A token bucket per source address, on the gateway's event loop with the time passed in:
/// `rate` datagrams per second, bursts of twice that. The table is bounded: when full, the
/// entries of idle addresses go.
public struct RateLimiter: Sendable {
    private struct Bucket: Sendable {
        var tokens: Double
        var last: UInt64
    }

    public let rate: Double
    public let maxAddresses: Int
    private var buckets: [String: Bucket] = [:]

    public init(rate: Int, maxAddresses: Int = 65_536) {
        self.rate = Double(rate)
        self.maxAddresses = maxAddresses
    }

    public mutating func allow(_ address: String, now: UInt64) -> Bool {
        let burst = rate * 2
        var b = buckets[address] ?? Bucket(tokens: burst, last: now)
        b.tokens = min(burst, b.tokens + Double(now &- b.last) / 1e9 * rate)
        b.last = now
        let ok = b.tokens >= 1
        if ok { b.tokens -= 1 }
        if buckets[address] == nil && buckets.count >= maxAddresses {
            // Full buckets carry no information: drop them (idle addresses), keep the busy ones.
            buckets = buckets.filter { min(burst, $0.value.tokens + Double(now &- $0.value.last) / 1e9 * rate) < burst }
            if buckets.count >= maxAddresses { return false }
        }
        buckets[address] = b
        return ok
    }
}
