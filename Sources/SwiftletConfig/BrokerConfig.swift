import Foundation
import Logging
import NIOCore

/// A listening socket.
public struct ListenerConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case tcp, tls, ws, wss }
    /// Client certificates: not asked for, asked for and verified when presented, or required.
    public enum Verify: String, Sendable { case none, optional, required }
    /// Which part of a verified client certificate stands for the username or client id.
    public enum CertField: String, Sendable { case cn, dn }
    /// Lowest TLS version a client may negotiate.
    public enum TLSVersion: String, Sendable, CaseIterable {
        case tlsv1 = "tlsv1", tlsv1_1 = "tlsv1.1", tlsv1_2 = "tlsv1.2", tlsv1_3 = "tlsv1.3"
    }
    public var kind: Kind
    public var host: String
    public var port: Int
    public var maxConnections: Int = 100_000
    /// New connections accepted per second (token bucket, burst of one second); 0: no limit.
    public var maxConnRate: Int = 0
    /// Listen backlog of the socket.
    public var backlog: Int = 1024
    /// Refused/malformed connection lines written per `logInterval`; the rest are counted
    /// and summarised in one line per interval.
    public var logLimit: Int = 20
    public var logInterval: Double = 10
    public var certFile: String?
    public var keyFile: String?
    public var caCertFile: String?
    public var verify: Verify = .none
    public var minTLSVersion: TLSVersion = .tlsv1_2
    /// OpenSSL cipher list for TLS 1.2 and below; nil: swift-nio-ssl's defaults.
    public var ciphers: String?
    /// Key exchange groups offered, `:`-separated, in order of preference; nil:
    /// swift-nio-ssl's defaults (X25519MLKEM768, x25519, secp256r1, secp384r1).
    public var supportedGroups: String?
    /// PEM CRL file: client certificates it lists are refused.
    public var crlFile: String?
    public var peerCertAsUsername: CertField?
    public var peerCertAsClientId: CertField?
    public var path: String = "/mqtt"
    /// Largest WebSocket frame accepted (ws, wss); nil: the larger of mqtt.max_packet_size and 64 KiB.
    public var maxFrameSize: Int?
    /// Browser origins allowed to open MQTT over WebSocket; empty: any.
    public var allowedOrigins: [String] = []
    /// With `allowedOrigins`: whether a request without an Origin header (not a browser) is accepted.
    public var allowOriginAbsence = true
    /// HTTP header carrying the client's address behind a proxy (ws, wss), e.g. X-Forwarded-For.
    public var proxyAddressHeader: String?
    /// Connections start with a PROXY protocol v1 or v2 header naming the client's address.
    public var proxyProtocol = false

    public init(kind: Kind, host: String, port: Int) {
        self.kind = kind
        self.host = host
        self.port = port
    }

    public var name: String { "\(kind.rawValue):\(host):\(port)" }
    public var isTLS: Bool { kind == .tls || kind == .wss }
    public var isWebSocket: Bool { kind == .ws || kind == .wss }
}

/// How a shared subscription group picks the member that gets a message.
public enum SharedStrategy: String, Sendable {
    case random, round_robin, sticky, hash_clientid, hash_topic
}

/// MQTT protocol limits and behaviour. Defaults are the embedded defaults documented in
/// docs/configuration.md and shipped in etc/swiftlet.toml.
public struct MQTTConfig: Sendable, Equatable {
    public var allowAnonymous = true
    public var idleTimeout: Double = 15
    /// Seconds a connected plain-TCP client may be idle before its connection is parked
    /// (its socket leaves the event loop's channel, its MQTT state stays); 0: never.
    public var parkAfter: Double = 15
    public var maxPacketSize = 1_048_576
    public var maxClientIdLength = 65_535
    public var maxTopicLevels = 128
    public var maxTopicLength = 65_535
    /// Filters one session may hold (0: no limit), EMQX's `max_subscriptions`.
    public var maxSubscriptions = 0
    public var maxTopicAlias = 64
    public var receiveMaximum = 32
    public var maxInflight = 32
    public var maxQueuedMessages = 1000
    public var maxQueuedBytes = 0
    public var maxRetainedMessages = 1_000_000
    public var maxRetainedBytes = 1 << 30
    public var queueQoS0 = true
    public var maxAwaitingRel = 100
    public var retryInterval: Double = 30
    public var sessionExpiryInterval: UInt32 = 7200
    public var maxSessionExpiryInterval: UInt32 = .max
    public var serverKeepAlive = 0
    public var keepaliveBackoff: Double = 1.5
    public var maxQoS = 2
    public var retainAvailable = true
    public var wildcardSubscription = true
    public var sharedSubscription = true
    public var sharedStrategy: SharedStrategy = .round_robin
    /// Refuse control characters in topics, client ids and user names as malformed.
    public var strictUTF8 = true

    public init() {}
}

/// The auth/ACL chain (docs/auth.md).
public struct AuthConfig: Sendable, Equatable {
    /// Built-in users file (TOML); nil: no built-in users.
    public var usersFile: String?
    /// Built-in ACL rules file (TOML); nil: emqttd's default rules.
    public var aclFile: String?
    /// When no provider decides an ACL question.
    public var aclNomatchAllow = false
    /// When a provider fails (sidecar down, timeout, database error).
    public var fallbackAllow = false
    public var cacheSize = 100_000
    public var allowTTL = TimeAmount.seconds(60)
    public var denyTTL = TimeAmount.seconds(5)
    /// Per-connection ACL cache entries (emqttd's acl_cache_max_size).
    public var connectionCacheSize = 32
    public var builtinOrder = 1000
    /// Scheme for passwords set with `swiftlet-ctl users`.
    public var passwordScheme: PasswordScheme = .bcrypt

    public init() {}
}

/// The durable store (docs/persistence.md).
public struct PersistenceConfig: Sendable, Equatable {
    public var mode: DurabilityMode = .batched
    public var dataDir = "data"
    /// Group commit window of `batched` mode, seconds.
    public var commitInterval: Double = 0.005

    public init() {}

    public var storePath: String { (dataDir as NSString).appendingPathComponent("swiftlet.db") }
}

/// Sidecars: the socket they connect to and the managed ones (docs/sidecars.md).
public struct SidecarsConfig: Sendable, Equatable {
    /// Unix socket path; nil: `<data_dir>/sidecar.sock`.
    public var socket: String?
    /// 0o600 (broker's user only) or 0o660 (and its group).
    public var socketMode: UInt16 = 0o600
    /// Timeout of the broker's requests to a sidecar (AUTHN/AUTHZ/CTL).
    public var requestTimeout = TimeAmount.seconds(5)
    public var handshakeTimeout = TimeAmount.seconds(5)
    /// Health pings: interval, and how long a PONG may take.
    public var healthInterval = TimeAmount.seconds(5)
    public var healthTimeout = TimeAmount.seconds(10)
    /// Folder of managed sidecar declarations (`<name>.toml`); nil: none.
    public var pluginsDir: String?
    /// Hook events queued per sidecar before new ones are dropped (counted).
    public var hookQueueSize = 10_000
    /// Gateway sessions one sidecar connection may have open (Protocol/SPEC.md section 7);
    /// GW_OPEN beyond it is answered ERROR 6.
    public var maxGatewaySessions = 100_000

    public init() {}
}

/// The control socket used by swiftlet-ctl (docs/operations.md).
public struct CtlConfig: Sendable, Equatable {
    /// Unix socket path; nil: `<data_dir>/ctl.sock`.
    public var socket: String?

    public init() {}
}

/// The dashboard's HTTP server: web UI, REST API and Prometheus (`[dashboard]`, docs/dashboard.md).
public struct DashboardConfig: Sendable, Equatable {
    public var enabled = true
    public var host = "0.0.0.0"
    public var port = 18083
    /// Threads of the dashboard's own event loop group (never an MQTT loop).
    public var acceptors = 2
    /// Concurrent HTTP connections; more wait to be accepted.
    public var maxClients = 512
    public var certFile: String?
    public var keyFile: String?
    public var defaultUsername = "admin"
    public var defaultPassword = "public"
    /// Seconds a login token stays valid.
    public var tokenExpiry: Double = 3600
    /// Login attempts allowed per client address and minute; past it, 429.
    public var loginAttemptsPerMinute = 10
    /// Whether the Prometheus endpoints need a token (scrapers usually have none).
    public var prometheusAuth = false
    /// Admins and API keys; nil: `<data_dir>/dashboard.json`.
    public var adminsFile: String?

    public init() {}
}

public struct BrokerConfig: Sendable, Equatable {
    public var nodeName = "swiftlet@127.0.0.1"
    public var logLevel: Logger.Level = .info
    public var listeners: [ListenerConfig] = [ListenerConfig(kind: .tcp, host: "0.0.0.0", port: 1883)]
    public var mqtt = MQTTConfig()
    /// Seconds between $SYS publications; 0 disables.
    public var sysInterval: Double = 60
    public var persistence = PersistenceConfig()
    public var auth = AuthConfig()
    public var sidecars = SidecarsConfig()
    public var ctl = CtlConfig()
    public var dashboard = DashboardConfig()

    public init() {}

    public var dashboardAdminsPath: String {
        dashboard.adminsFile ?? (persistence.dataDir as NSString).appendingPathComponent("dashboard.json")
    }

    public var sidecarSocketPath: String {
        sidecars.socket ?? (persistence.dataDir as NSString).appendingPathComponent("sidecar.sock")
    }

    public var ctlSocketPath: String {
        ctl.socket ?? (persistence.dataDir as NSString).appendingPathComponent("ctl.sock")
    }
}

/// How the built-in user store hashes new passwords (`[auth] password_hash`).
public enum PasswordScheme: String, Sendable { case bcrypt, pbkdf2_sha512 = "pbkdf2-sha512" }

/// How the durable store commits (`[persistence] mode`).
public enum DurabilityMode: String, Sendable {
    /// Each change is committed (fsync) before the PUBACK/PUBREC that depends on it.
    case sync
    /// Changes are group-committed every `commit_interval`; acknowledgements still wait for
    /// the commit that holds their message.
    case batched
    /// Memory only.
    case none
}
