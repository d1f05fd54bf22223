import SwiftletConfig
import Logging

/// What `reload config` changes, decided from the running configuration and the file's
/// alone (no I/O: the unit tests check it). The broker checks everything the plan needs
/// (certificates, ACL and users files, plugin files) before it applies any of it.
struct ReloadPlan {
    /// The new log level, when it changed.
    var logLevel: Logger.Level?
    /// The new `[mqtt]` section, when any key changed: every key applies live (to connections
    /// accepted from now on, and the broker-wide ones at once).
    var mqtt: MQTTConfig?
    /// One line per changed `[mqtt]` key and whom it applies to:
    /// `mqtt.max_packet_size 1048576 -> 512 (new connections)`.
    var mqttChanges: [String] = []
    /// Running listeners whose `max_connections` or `max_conn_rate` changed (and nothing
    /// else that needs a restart): `(name, new config)`.
    var listenerLimits: [(name: String, config: ListenerConfig)] = []
    /// Running TLS/WSS listeners configured as before (limits aside): their certificate files
    /// are read again.
    var tlsListeners: [String] = []
    var needsRestart: [String] = []
    /// The configuration in force once the plan is applied: the next reload compares with it,
    /// so a change that needs a restart is named again until the broker restarts.
    var inForce: BrokerConfig

    init(running old: BrokerConfig, file new: BrokerConfig) {
        inForce = old
        if new.logLevel != old.logLevel {
            logLevel = new.logLevel
            inForce.logLevel = new.logLevel
        }
        mqttChanges = Self.mqttKeys.compactMap { key, value in
            let (a, b) = (value(old.mqtt), value(new.mqtt))
            return a == b ? nil : "mqtt.\(key) \(a) -> \(b) (\(Self.atOnce.contains(key) ? "at once" : "new connections"))"
        }
        if old.mqtt != new.mqtt {
            mqtt = new.mqtt
            inForce.mqtt = new.mqtt
        }
        planListeners(old.listeners, new.listeners)
        needsRestart += Self.restartOnlyChanges(old, new)
    }

    /// Listeners are matched by type and bind address (what identifies a bound socket).
    private mutating func planListeners(_ old: [ListenerConfig], _ new: [ListenerConfig]) {
        for (i, o) in old.enumerated() {
            guard let n = new.first(where: { Self.sameSocket($0, o) }) else {
                needsRestart.append("listener \(o.name) (removed from the file)")
                continue
            }
            guard Self.withoutLimits(n) == Self.withoutLimits(o) else {
                needsRestart.append("listener \(o.name) (changed other than max_connections, max_conn_rate)")
                continue
            }
            if o.isTLS { tlsListeners.append(o.name) }
            if n.maxConnections != o.maxConnections || n.maxConnRate != o.maxConnRate {
                listenerLimits.append((o.name, n))
                inForce.listeners[i].maxConnections = n.maxConnections
                inForce.listeners[i].maxConnRate = n.maxConnRate
            }
        }
        for n in new where !old.contains(where: { Self.sameSocket($0, n) }) {
            needsRestart.append("listener \(n.name) (new)")
        }
    }

    static func sameSocket(_ a: ListenerConfig, _ b: ListenerConfig) -> Bool {
        a.kind == b.kind && a.host == b.host && a.port == b.port
    }

    private static func withoutLimits(_ l: ListenerConfig) -> ListenerConfig {
        var l = l
        (l.maxConnections, l.maxConnRate) = (0, 0)
        return l
    }

    /// The changed settings that only take effect at the next start (the store, sockets, the
    /// dashboard, the auth chain's own settings). Listeners are planned one by one above.
    static func restartOnlyChanges(_ a: BrokerConfig, _ b: BrokerConfig) -> [String] {
        var out: [String] = []
        if a.nodeName != b.nodeName { out.append("node.name") }
        if a.sysInterval != b.sysInterval { out.append("sys.interval") }
        if a.persistence != b.persistence { out.append("persistence") }
        if a.auth.aclFile != b.auth.aclFile { out.append("auth.acl_file (a different file)") }
        if a.auth.usersFile != b.auth.usersFile { out.append("auth.users_file (a different file)") }
        var aa = a.auth, bb = b.auth
        (aa.aclFile, aa.usersFile, bb.aclFile, bb.usersFile) = (nil, nil, nil, nil)
        if aa != bb { out.append("auth (cache, fallback, acl_nomatch, password_hash)") }
        if a.sidecars != b.sidecars { out.append("sidecars") }
        if a.ctl != b.ctl { out.append("ctl") }
        if a.dashboard != b.dashboard { out.append("dashboard") }
        return out
    }

    /// The `[mqtt]` keys that are not part of a connection's policy but of the broker's: they
    /// apply at once. Every other key applies to connections accepted after the reload (a
    /// session resumed by one takes its queue limits); open connections keep theirs.
    static let atOnce: Set<String> = ["max_retained_messages", "max_retained_bytes", "shared_subscription_strategy"]

    /// Every `[mqtt]` key by its name in the file, for the report.
    static let mqttKeys: [(String, @Sendable (MQTTConfig) -> String)] = [
        ("allow_anonymous", { "\($0.allowAnonymous)" }),
        ("idle_timeout", { "\($0.idleTimeout)" }),
        ("park_after", { "\($0.parkAfter)" }),
        ("max_packet_size", { "\($0.maxPacketSize)" }),
        ("max_clientid_len", { "\($0.maxClientIdLength)" }),
        ("max_topic_levels", { "\($0.maxTopicLevels)" }),
        ("max_topic_length", { "\($0.maxTopicLength)" }),
        ("max_subscriptions", { "\($0.maxSubscriptions)" }),
        ("max_topic_alias", { "\($0.maxTopicAlias)" }),
        ("receive_maximum", { "\($0.receiveMaximum)" }),
        ("max_inflight", { "\($0.maxInflight)" }),
        ("max_queued_messages", { "\($0.maxQueuedMessages)" }),
        ("max_queued_bytes", { "\($0.maxQueuedBytes)" }),
        ("max_retained_messages", { "\($0.maxRetainedMessages)" }),
        ("max_retained_bytes", { "\($0.maxRetainedBytes)" }),
        ("queue_qos0", { "\($0.queueQoS0)" }),
        ("max_awaiting_rel", { "\($0.maxAwaitingRel)" }),
        ("retry_interval", { "\($0.retryInterval)" }),
        ("session_expiry_interval", { "\($0.sessionExpiryInterval)" }),
        ("max_session_expiry_interval", { "\($0.maxSessionExpiryInterval)" }),
        ("server_keep_alive", { "\($0.serverKeepAlive)" }),
        ("keepalive_backoff", { "\($0.keepaliveBackoff)" }),
        ("max_qos", { "\($0.maxQoS)" }),
        ("retain_available", { "\($0.retainAvailable)" }),
        ("wildcard_subscription", { "\($0.wildcardSubscription)" }),
        ("shared_subscription", { "\($0.sharedSubscription)" }),
        ("shared_subscription_strategy", { "\($0.sharedStrategy)" }),
        ("strict_utf8", { "\($0.strictUTF8)" }),
    ]
}
