import GatewayKit
import StrictTOML

/// `[sockjs]` of etc/plugins/gateways.toml (emqttd_sockjs: `{cowboy_listener, {stomp_sockjs, 61616, 4}}`).
/// The STOMP side (frame limits, default user, heart-beats) is `[stomp]`'s.
public struct SockJSSettings: Sendable {
    public var enabled = true
    public var listener = ListenAddress(port: 61616)
    /// The SockJS endpoint: `<prefix>/info`, `<prefix>/<server>/<session>/<transport>`.
    public var prefix = "/stomp"
    /// Sessions at once (each is one STOMP connection); more are closed at once.
    public var maxSessions = 512
    /// Seconds between SockJS "h" frames on an idle receiving connection.
    public var heartbeatDelay = 25
    /// Seconds a session lives without a receiving connection (polling transports).
    public var disconnectDelay = 5
    /// Bytes one streaming response carries before it is ended (the client opens another).
    public var responseLimit = 128 * 1024
    /// The browser SockJS client the demo page and the iframe transport load, served by the
    /// gateway at /sockjs.min.js (Debian's node-sockjs-client).
    public var sockjsClient = "/usr/share/nodejs/sockjs-client/dist/sockjs.min.js"
    /// Serve the demo page at / and /index.html.
    public var demo = true

    public init() {}

    public init(_ s: ConfigSection) throws {
        try s.checkKeys(allowed: ["enabled", "listener", "prefix", "max_sessions", "heartbeat_delay", "disconnect_delay",
                                  "response_limit", "sockjs_client", "demo"])
        enabled = try s.bool("enabled") ?? enabled
        listener = try ListenAddress.read(s, "listener", default: listener)
        if let p = try s.string("prefix") {
            guard p.hasPrefix("/"), !p.hasSuffix("/"), !p.contains("?") else {
                throw s.error("prefix", "a path like \"/stomp\" (leading slash, no trailing slash)")
            }
            prefix = p
        }
        maxSessions = try s.int("max_sessions", range: 1...1_000_000) ?? maxSessions
        heartbeatDelay = try s.int("heartbeat_delay", range: 1...3600) ?? heartbeatDelay
        disconnectDelay = try s.int("disconnect_delay", range: 1...3600) ?? disconnectDelay
        responseLimit = try s.int("response_limit", range: 4096...67_108_864) ?? responseLimit
        sockjsClient = try s.string("sockjs_client") ?? sockjsClient
        demo = try s.bool("demo") ?? demo
    }
}
