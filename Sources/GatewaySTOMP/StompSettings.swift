import GatewayKit
import StrictTOML

/// `[stomp]` of etc/plugins/gateways.toml: emqttd_stomp's options under their names.
public struct StompSettings: Sendable {
    public var enabled = true
    public var listener = ListenAddress(port: 61613)
    /// Event loops (threads) serving the listener.
    public var acceptors = 4
    /// Connections beyond this are answered with an ERROR frame and closed.
    public var maxClients = 512
    public var limits = StompLimits()
    public var channel = StompChannelConfig()
    /// Bytes a client may have sent that the broker has not taken yet before its socket is
    /// no longer read (slow broker, or a client outrunning the broker).
    public var maxQueuedBytes = 256 * 1024
    /// Bytes written to a client and not yet taken by its socket before it counts as slow:
    /// QoS 0 messages for it are then dropped and counted, QoS 1 wait unacknowledged.
    public var maxOutboundBytes = 256 * 1024

    public init() {}

    public init(_ s: ConfigSection) throws {
        try s.checkKeys(allowed: ["enabled", "listener", "acceptors", "max_clients", "allow_anonymous", "default_user",
                                  "frame", "heartbeat", "receive_maximum", "max_transaction_frames", "max_queued_bytes",
                                  "max_outbound_bytes"])
        enabled = try s.bool("enabled") ?? enabled
        listener = try ListenAddress.read(s, "listener", default: listener)
        acceptors = try s.int("acceptors", range: 1...64) ?? acceptors
        maxClients = try s.int("max_clients", range: 1...1_000_000) ?? maxClients
        channel.allowAnonymous = try s.bool("allow_anonymous") ?? channel.allowAnonymous
        if let u = try s.section("default_user") {
            try u.checkKeys(allowed: ["login", "passcode"])
            channel.defaultLogin = try u.string("login") ?? channel.defaultLogin
            channel.defaultPasscode = try u.string("passcode") ?? channel.defaultPasscode
        }
        if let f = try s.section("frame") {
            try f.checkKeys(allowed: ["max_headers", "max_header_length", "max_body_length"])
            limits.maxHeaders = try f.int("max_headers", range: 1...1000) ?? limits.maxHeaders
            limits.maxHeaderLength = try f.int("max_header_length", range: 16...1_048_576) ?? limits.maxHeaderLength
            limits.maxBodyLength = try f.int("max_body_length", range: 0...16_777_216) ?? limits.maxBodyLength
        }
        channel.heartbeatMs = try s.int("heartbeat", range: 0...3_600_000) ?? channel.heartbeatMs
        if let r = try s.int("receive_maximum", range: 1...65_535) { channel.receiveMaximum = UInt16(r) }
        channel.maxTransactionFrames = try s.int("max_transaction_frames", range: 1...1_000_000) ?? channel.maxTransactionFrames
        maxQueuedBytes = try s.int("max_queued_bytes", range: 1024...1_073_741_824) ?? maxQueuedBytes
        maxOutboundBytes = try s.int("max_outbound_bytes", range: 1024...1_073_741_824) ?? maxOutboundBytes
    }
}
