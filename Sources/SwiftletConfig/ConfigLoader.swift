import Foundation
import Logging
import NIOCore
@_exported import StrictTOML
import TOMLKit

/// Reads etc/swiftlet.toml-style files into `BrokerConfig`. Unknown keys and wrong types
/// are refused (a typo must not silently fall back to a default).
public enum ConfigLoader {
    public static func load(path: String) throws -> BrokerConfig {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "--config", line: nil, message: "cannot read \(path)")
        }
        return try parse(text)
    }

    public static func parse(_ text: String) throws -> BrokerConfig {
        let root = try StrictTOML.parse(text)
        var reader = Reader(text: text)
        var config = BrokerConfig()
        try reader.checkKeys(root, allowed: ["node", "log", "listeners", "mqtt", "sys", "persistence", "auth", "sidecars", "ctl", "dashboard"], section: "")

        if let node = try reader.table(root, "node", section: "") {
            try reader.checkKeys(node, allowed: ["name"], section: "node")
            if let v = try reader.string(node, "name", section: "node") {
                guard !v.isEmpty, !v.contains("/"), !v.contains("+"), !v.contains("#") else {
                    throw reader.error("node.name", "must be non-empty and contain no '/', '+' or '#'")
                }
                config.nodeName = v
            }
        }
        if let log = try reader.table(root, "log", section: "") {
            try reader.checkKeys(log, allowed: ["level"], section: "log")
            if let v = try reader.string(log, "level", section: "log") {
                guard let level = Logger.Level(rawValue: v) else {
                    throw reader.error("log.level", "must be one of trace, debug, info, notice, warning, error, critical")
                }
                config.logLevel = level
            }
        }
        if let node = root["listeners"] {
            guard let array = node.array else { throw reader.error("listeners", "must be an array of tables ([[listeners]])") }
            var listeners: [ListenerConfig] = []
            for (i, element) in array.enumerated() {
                guard let t = element.table else { throw reader.error("listeners", "entry \(i + 1) is not a table") }
                listeners.append(try reader.listener(t, index: i))
            }
            config.listeners = listeners
        }
        if let m = try reader.table(root, "mqtt", section: "") {
            try reader.mqtt(m, into: &config.mqtt)
        }
        if let s = try reader.table(root, "sys", section: "") {
            try reader.checkKeys(s, allowed: ["interval"], section: "sys")
            if let v = try reader.number(s, "interval", section: "sys", min: 0, max: 86_400) { config.sysInterval = v }
        }
        if let t = try reader.table(root, "persistence", section: "") {
            try reader.checkKeys(t, allowed: ["mode", "data_dir", "commit_interval"], section: "persistence")
            if let v = try reader.string(t, "mode", section: "persistence") {
                guard let mode = DurabilityMode(rawValue: v) else {
                    throw reader.error("persistence.mode", "must be sync, batched or none, got \(v.debugDescription)")
                }
                config.persistence.mode = mode
            }
            if let v = try reader.string(t, "data_dir", section: "persistence") {
                guard !v.isEmpty else { throw reader.error("persistence.data_dir", "must not be empty") }
                config.persistence.dataDir = v
            }
            if let v = try reader.number(t, "commit_interval", section: "persistence", min: 0.0001, max: 1) {
                config.persistence.commitInterval = v
            }
        }
        if let t = try reader.table(root, "sidecars", section: "") {
            let s = "sidecars"
            try reader.checkKeys(t, allowed: ["socket", "socket_mode", "request_timeout", "handshake_timeout",
                                              "health_interval", "health_timeout", "plugins_dir", "hook_queue_size",
                                              "max_gateway_sessions"], section: s)
            var c = config.sidecars
            if let v = try reader.string(t, "socket", section: s) {
                guard !v.isEmpty, v.utf8.count < 104 else { throw reader.error("sidecars.socket", "must be a path of 1 to 103 bytes") }
                c.socket = v
            }
            if let v = try reader.string(t, "socket_mode", section: s) {
                guard v == "0600" || v == "0660" else { throw reader.error("sidecars.socket_mode", "must be \"0600\" or \"0660\"") }
                c.socketMode = v == "0600" ? 0o600 : 0o660
            }
            func seconds(_ key: String) throws -> TimeAmount? {
                try reader.number(t, key, section: s, min: 0.01, max: 3600).map { .milliseconds(Int64($0 * 1000)) }
            }
            if let v = try seconds("request_timeout") { c.requestTimeout = v }
            if let v = try seconds("handshake_timeout") { c.handshakeTimeout = v }
            if let v = try seconds("health_interval") { c.healthInterval = v }
            if let v = try seconds("health_timeout") { c.healthTimeout = v }
            if let v = try reader.string(t, "plugins_dir", section: s) { c.pluginsDir = v.isEmpty ? nil : v }
            if let v = try reader.int(t, "hook_queue_size", section: s, min: 1, max: 10_000_000) { c.hookQueueSize = v }
            if let v = try reader.int(t, "max_gateway_sessions", section: s, min: 0, max: 10_000_000) { c.maxGatewaySessions = v }
            config.sidecars = c
        }
        if let t = try reader.table(root, "dashboard", section: "") {
            config.dashboard = try parseDashboard(reader.section(t, "dashboard"))
        }
        if let t = try reader.table(root, "ctl", section: "") {
            try reader.checkKeys(t, allowed: ["socket"], section: "ctl")
            if let v = try reader.string(t, "socket", section: "ctl") {
                guard !v.isEmpty, v.utf8.count < 104 else { throw reader.error("ctl.socket", "must be a path of 1 to 103 bytes") }
                config.ctl.socket = v
            }
        }
        if let t = try reader.table(root, "auth", section: "") {
            let s = "auth"
            try reader.checkKeys(t, allowed: ["users_file", "acl_file", "acl_nomatch", "fallback", "cache_size",
                                              "cache_ttl_allow", "cache_ttl_deny", "connection_cache_size",
                                              "builtin_order", "password_hash"], section: s)
            var a = config.auth
            a.usersFile = try reader.string(t, "users_file", section: s)
            a.aclFile = try reader.string(t, "acl_file", section: s)
            func allowDeny(_ key: String) throws -> Bool? {
                guard let v = try reader.string(t, key, section: s) else { return nil }
                guard v == "allow" || v == "deny" else { throw reader.error("auth.\(key)", "must be allow or deny") }
                return v == "allow"
            }
            if let v = try allowDeny("acl_nomatch") { a.aclNomatchAllow = v }
            if let v = try allowDeny("fallback") { a.fallbackAllow = v }
            if let v = try reader.int(t, "cache_size", section: s, min: 1, max: 100_000_000) { a.cacheSize = v }
            if let v = try reader.number(t, "cache_ttl_allow", section: s, min: 0, max: 86_400) { a.allowTTL = .milliseconds(Int64(v * 1000)) }
            if let v = try reader.number(t, "cache_ttl_deny", section: s, min: 0, max: 86_400) { a.denyTTL = .milliseconds(Int64(v * 1000)) }
            if let v = try reader.int(t, "connection_cache_size", section: s, min: 0, max: 100_000) { a.connectionCacheSize = v }
            if let v = try reader.int(t, "builtin_order", section: s, min: 0, max: 65_535) { a.builtinOrder = v }
            if let v = try reader.string(t, "password_hash", section: s) {
                guard let scheme = PasswordScheme(rawValue: v) else {
                    throw reader.error("auth.password_hash", "must be bcrypt or pbkdf2-sha512")
                }
                a.passwordScheme = scheme
            }
            config.auth = a
        }
        return config
    }

    /// Typed accessors that turn a wrong value into a `ConfigError` with its line: the
    /// broker's calls on StrictTOML's `ConfigSection`, the one reader it shares with SidecarKit.
    public struct Reader {
        let index: LineIndex

        public init(text: String) { self.index = LineIndex(text: text) }

        /// Best-effort line of `key` within `[section]` (or anywhere when not found there).
        public func line(of dotted: String) -> Int? { index.line(of: dotted) }

        public func error(_ key: String, _ message: String) -> ConfigError {
            ConfigError(key: key, line: line(of: key), message: message)
        }

        /// `t` as the section at dotted path `section`.
        public func section(_ t: TOMLTable, _ section: String) -> ConfigSection {
            ConfigSection(table: t, path: section, file: nil, lines: index)
        }

        public func checkKeys(_ t: TOMLTable, allowed: Set<String>, section: String) throws {
            try self.section(t, section).checkKeys(allowed: allowed)
        }

        public func table(_ t: TOMLTable, _ key: String, section: String) throws -> TOMLTable? {
            try self.section(t, section).section(key)?.table
        }

        public func string(_ t: TOMLTable, _ key: String, section: String) throws -> String? {
            try self.section(t, section).string(key)
        }

        public func bool(_ t: TOMLTable, _ key: String, section: String) throws -> Bool? {
            try self.section(t, section).bool(key)
        }

        public func int(_ t: TOMLTable, _ key: String, section: String, min: Int, max: Int) throws -> Int? {
            try self.section(t, section).int(key, range: min...max)
        }

        public func number(_ t: TOMLTable, _ key: String, section: String, min: Double, max: Double) throws -> Double? {
            try self.section(t, section).double(key, range: min...max)
        }

        func listener(_ t: TOMLTable, index: Int) throws -> ListenerConfig {
            let s = "listeners"
            let tlsKeys: Set<String> = ["certfile", "keyfile", "cacertfile", "verify", "verify_peer", "fail_if_no_peer_cert",
                                        "min_tls_version", "ciphers", "supported_groups", "crlfile", "peer_cert_as_username",
                                        "peer_cert_as_clientid"]
            try checkKeys(t, allowed: tlsKeys.union(["type", "bind", "max_connections", "max_conn_rate", "backlog",
                                                     "log_limit", "log_interval", "path", "max_frame_size",
                                                     "allowed_origins", "allow_origin_absence", "proxy_address_header",
                                                     "proxy_protocol"]), section: s)
            let typeName = try string(t, "type", section: s) ?? "tcp"
            guard let kind = ListenerConfig.Kind(rawValue: typeName) else {
                throw error("listeners.type", "must be tcp, tls, ws or wss, got \(typeName.debugDescription)")
            }
            guard let bind = try string(t, "bind", section: s) else { throw error("listeners.bind", "is required (\"host:port\")") }
            guard let (host, port) = Self.splitBind(bind) else {
                throw error("listeners.bind", "must be \"host:port\" or \"[v6]:port\", got \(bind.debugDescription)")
            }
            var l = ListenerConfig(kind: kind, host: host, port: port)
            if let v = try int(t, "max_connections", section: s, min: 1, max: 10_000_000) { l.maxConnections = v }
            if let v = try int(t, "max_conn_rate", section: s, min: 0, max: 10_000_000) { l.maxConnRate = v }
            if let v = try int(t, "backlog", section: s, min: 1, max: 65_535) { l.backlog = v }
            if let v = try int(t, "log_limit", section: s, min: 0, max: 1_000_000) { l.logLimit = v }
            if let v = try number(t, "log_interval", section: s, min: 1, max: 86_400) { l.logInterval = v }
            if let v = try string(t, "path", section: s) {
                guard v.hasPrefix("/") else { throw error("listeners.path", "must start with '/'") }
                l.path = v
            }
            if let v = try bool(t, "proxy_protocol", section: s) { l.proxyProtocol = v }
            if !l.isWebSocket {
                for k in ["max_frame_size", "allowed_origins", "allow_origin_absence", "proxy_address_header"] where t[k] != nil {
                    throw error("listeners.\(k)", "applies to ws and wss listeners only (\(bind) is \(kind.rawValue))")
                }
            }
            if let v = try int(t, "max_frame_size", section: s, min: 16, max: 268_435_460) { l.maxFrameSize = v }
            if let v = try section(t, s).strings("allowed_origins") { l.allowedOrigins = v }
            if let v = try bool(t, "allow_origin_absence", section: s) { l.allowOriginAbsence = v }
            if let v = try string(t, "proxy_address_header", section: s) {
                guard !v.isEmpty, v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                    throw error("listeners.proxy_address_header", "must be an HTTP header name such as X-Forwarded-For")
                }
                l.proxyAddressHeader = v
            }
            guard l.isTLS else {
                // TLS options on a plain listener are a mistake an operator wants to hear about
                // (certfile and friends were accepted before and stay accepted, unused).
                for k in ["verify", "min_tls_version", "ciphers", "supported_groups", "crlfile", "peer_cert_as_username", "peer_cert_as_clientid"]
                where t[k] != nil {
                    throw error("listeners.\(k)", "applies to tls and wss listeners only (\(bind) is \(kind.rawValue))")
                }
                return l
            }
            l.certFile = try string(t, "certfile", section: s)
            l.keyFile = try string(t, "keyfile", section: s)
            l.caCertFile = try string(t, "cacertfile", section: s)
            guard l.certFile != nil, l.keyFile != nil else {
                throw error("listeners.certfile", "\(kind.rawValue) listener \(bind) needs certfile and keyfile")
            }
            if let v = try string(t, "verify", section: s) {
                // emqttd's verify_none/verify_peer spellings are accepted too.
                let name = v.hasPrefix("verify_") ? String(v.dropFirst(7)) : v
                guard let mode = ListenerConfig.Verify(rawValue: name == "peer" ? "optional" : name) else {
                    throw error("listeners.verify", "must be none, optional or required, got \(v.debugDescription)")
                }
                if t["verify_peer"] != nil || t["fail_if_no_peer_cert"] != nil {
                    throw error("listeners.verify", "set either verify or its older spelling verify_peer/fail_if_no_peer_cert, not both")
                }
                l.verify = mode
            } else if try bool(t, "verify_peer", section: s) == true {
                l.verify = try bool(t, "fail_if_no_peer_cert", section: s) == true ? .required : .optional
            } else {
                _ = try bool(t, "fail_if_no_peer_cert", section: s)
            }
            if l.verify != .none && l.caCertFile == nil {
                throw error("listeners.cacertfile", "verify = \"\(l.verify.rawValue)\" needs cacertfile (the CA that signs client certificates)")
            }
            if let v = try string(t, "min_tls_version", section: s) {
                guard let version = ListenerConfig.TLSVersion(rawValue: v) else {
                    throw error("listeners.min_tls_version", "must be tlsv1, tlsv1.1, tlsv1.2 or tlsv1.3, got \(v.debugDescription)")
                }
                l.minTLSVersion = version
            }
            if let v = try string(t, "ciphers", section: s) {
                if case .failure(let e) = TLSCipherNames.parse(v) { throw error("listeners.ciphers", e.text) }
                l.ciphers = v
            }
            if let v = try string(t, "supported_groups", section: s) {
                if case .failure(let e) = TLSGroupNames.parse(v) { throw error("listeners.supported_groups", e.text) }
                l.supportedGroups = v
            }
            l.crlFile = try string(t, "crlfile", section: s)
            for (key, path) in [("peer_cert_as_username", \ListenerConfig.peerCertAsUsername),
                                ("peer_cert_as_clientid", \ListenerConfig.peerCertAsClientId)] {
                guard let v = try string(t, key, section: s) else { continue }
                guard let field = ListenerConfig.CertField(rawValue: v) else {
                    throw error("listeners.\(key)", "must be cn or dn, got \(v.debugDescription)")
                }
                l[keyPath: path] = field
            }
            if l.verify == .none {
                for k in ["crlfile", "peer_cert_as_username", "peer_cert_as_clientid"] where t[k] != nil {
                    throw error("listeners.\(k)", "needs client certificates: set verify = \"optional\" or \"required\"")
                }
            }
            return l
        }

        static func splitBind(_ s: String) -> (String, Int)? {
            let host: Substring
            let portPart: Substring
            if s.hasPrefix("[") {
                guard let close = s.firstIndex(of: "]") else { return nil }
                host = s[s.index(after: s.startIndex)..<close]
                let rest = s[s.index(after: close)...]
                guard rest.hasPrefix(":") else { return nil }
                portPart = rest.dropFirst()
            } else {
                guard let colon = s.lastIndex(of: ":") else { return nil }
                host = s[..<colon]
                portPart = s[s.index(after: colon)...]
            }
            guard let port = Int(portPart), (0...65_535).contains(port), !host.isEmpty else { return nil }
            return (String(host), port)
        }

        func mqtt(_ t: TOMLTable, into m: inout MQTTConfig) throws {
            let s = "mqtt"
            try checkKeys(t, allowed: [
                "allow_anonymous", "idle_timeout", "park_after", "max_packet_size", "max_clientid_len", "max_topic_levels",
                "max_topic_length", "max_subscriptions", "max_topic_alias", "receive_maximum", "max_inflight", "max_queued_messages",
                "queue_qos0", "max_awaiting_rel", "max_queued_bytes", "max_retained_messages", "max_retained_bytes", "retry_interval", "session_expiry_interval",
                "max_session_expiry_interval", "server_keep_alive", "keepalive_backoff", "max_qos",
                "retain_available", "wildcard_subscription", "shared_subscription", "shared_subscription_strategy", "strict_utf8",
            ], section: s)
            if let v = try bool(t, "allow_anonymous", section: s) { m.allowAnonymous = v }
            if let v = try number(t, "idle_timeout", section: s, min: 0.1, max: 3600) { m.idleTimeout = v }
            if let v = try number(t, "park_after", section: s, min: 0, max: 86_400) { m.parkAfter = v }
            if let v = try int(t, "max_packet_size", section: s, min: 64, max: 268_435_460) { m.maxPacketSize = v }
            if let v = try int(t, "max_clientid_len", section: s, min: 23, max: 65_535) { m.maxClientIdLength = v }
            if let v = try int(t, "max_topic_levels", section: s, min: 1, max: 65_535) { m.maxTopicLevels = v }
            if let v = try int(t, "max_topic_length", section: s, min: 1, max: 65_535) { m.maxTopicLength = v }
            if let v = try int(t, "max_topic_alias", section: s, min: 0, max: 65_535) { m.maxTopicAlias = v }
            if let v = try int(t, "max_subscriptions", section: s, min: 0, max: Int.max) { m.maxSubscriptions = v }
            if let v = try int(t, "receive_maximum", section: s, min: 1, max: 65_535) { m.receiveMaximum = v }
            if let v = try int(t, "max_inflight", section: s, min: 1, max: 65_535) { m.maxInflight = v }
            if let v = try int(t, "max_queued_messages", section: s, min: 0, max: 100_000_000) { m.maxQueuedMessages = v }
            if let v = try bool(t, "queue_qos0", section: s) { m.queueQoS0 = v }
            if let v = try int(t, "max_queued_bytes", section: s, min: 0, max: Int.max) { m.maxQueuedBytes = v }
            if let v = try int(t, "max_retained_messages", section: s, min: 0, max: Int.max) { m.maxRetainedMessages = v }
            if let v = try int(t, "max_retained_bytes", section: s, min: 0, max: Int.max) { m.maxRetainedBytes = v }
            if let v = try int(t, "max_awaiting_rel", section: s, min: 1, max: 65_535) { m.maxAwaitingRel = v }
            if let v = try number(t, "retry_interval", section: s, min: 0, max: 86_400) { m.retryInterval = v }
            if let v = try int(t, "session_expiry_interval", section: s, min: 0, max: Int(UInt32.max)) {
                m.sessionExpiryInterval = UInt32(v)
            }
            if let v = try int(t, "max_session_expiry_interval", section: s, min: 0, max: Int(UInt32.max)) {
                m.maxSessionExpiryInterval = UInt32(v)
            }
            if let v = try int(t, "server_keep_alive", section: s, min: 0, max: 65_535) { m.serverKeepAlive = v }
            if let v = try number(t, "keepalive_backoff", section: s, min: 1, max: 10) { m.keepaliveBackoff = v }
            if let v = try int(t, "max_qos", section: s, min: 0, max: 2) { m.maxQoS = v }
            if let v = try bool(t, "retain_available", section: s) { m.retainAvailable = v }
            if let v = try bool(t, "wildcard_subscription", section: s) { m.wildcardSubscription = v }
            if let v = try bool(t, "strict_utf8", section: s) { m.strictUTF8 = v }
            if let v = try bool(t, "shared_subscription", section: s) { m.sharedSubscription = v }
            if let v = try string(t, "shared_subscription_strategy", section: s) {
                guard let st = SharedStrategy(rawValue: v) else {
                    throw error("mqtt.shared_subscription_strategy",
                                "must be random, round_robin, sticky, hash_clientid or hash_topic, got \(v.debugDescription)")
                }
                m.sharedStrategy = st
            }
        }
    }
}

extension ConfigLoader {
    /// `[dashboard]`: `listener` is "HOST:PORT", "[V6]:PORT" or a port (the seed's
    /// `listener = 18083`), bound on all addresses.
    static func parseDashboard(_ s: ConfigSection) throws -> DashboardConfig {
        try s.checkKeys(allowed: ["enabled", "listener", "acceptors", "max_clients", "certfile", "keyfile",
                                  "default_username", "default_password", "token_expiry", "login_attempts_per_minute",
                                  "prometheus_auth", "admins_file"])
        var d = DashboardConfig()
        if let v = try s.bool("enabled") { d.enabled = v }
        if s.table["listener"]?.int != nil {
            d.port = try s.int("listener", range: 0...65_535)!
        } else if let v = try s.string("listener") {
            guard let colon = v.lastIndex(of: ":"), let port = Int(v[v.index(after: colon)...]), (0...65_535).contains(port) else {
                throw s.error("listener", "must be \"HOST:PORT\" or a port number, not \"\(v)\"")
            }
            var host = String(v[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw s.error("listener", "has no host (use \"0.0.0.0:\(port)\")") }
            d.host = host
            d.port = port
        }
        if let v = try s.int("acceptors", range: 1...64) { d.acceptors = v }
        if let v = try s.int("max_clients", range: 1...1_000_000) { d.maxClients = v }
        d.certFile = try s.string("certfile")
        d.keyFile = try s.string("keyfile")
        if (d.certFile == nil) != (d.keyFile == nil) { throw s.error(d.certFile == nil ? "certfile" : "keyfile", "certfile and keyfile go together") }
        if let v = try s.string("default_username") {
            guard !v.isEmpty else { throw s.error("default_username", "must not be empty") }
            d.defaultUsername = v
        }
        if let v = try s.string("default_password") {
            guard !v.isEmpty else { throw s.error("default_password", "must not be empty") }
            d.defaultPassword = v
        }
        if let v = try s.double("token_expiry", range: 60...31_536_000) { d.tokenExpiry = v }
        if let v = try s.int("login_attempts_per_minute", range: 5...10_000) { d.loginAttemptsPerMinute = v }
        if let v = try s.bool("prometheus_auth") { d.prometheusAuth = v }
        d.adminsFile = try s.string("admins_file")
        return d
    }
}
