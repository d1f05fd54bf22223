import Logging
import NIOCore
import XCTest
@testable import SwiftletConfig

final class ConfigLoaderTests: XCTestCase {
    /// Parses `text` expecting a `ConfigError`, which it returns.
    private func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(text)
            XCTFail("expected a ConfigError", file: file, line: line)
        } catch let e as ConfigError {
            return e
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    func testEmptyFileGivesDefaults() throws {
        let c = try ConfigLoader.parse("")
        XCTAssertEqual(c, BrokerConfig())
        XCTAssertEqual(c.listeners, [ListenerConfig(kind: .tcp, host: "0.0.0.0", port: 1883)])
        XCTAssertEqual(c.mqtt.maxPacketSize, 1_048_576)
        XCTAssertEqual(c.mqtt.sharedStrategy, .round_robin)
        XCTAssertEqual(c.sysInterval, 60)
    }

    func testCommentsOnlyGivesDefaults() throws {
        XCTAssertEqual(try ConfigLoader.parse("# nothing\n\n[mqtt]\n# still nothing\n"), BrokerConfig())
    }

    func testEveryKeyIsParsed() throws {
        let c = try ConfigLoader.parse("""
        [node]
        name = "edge-1@10.0.0.1"

        [log]
        level = "debug"

        [[listeners]]
        type = "tcp"
        bind = "127.0.0.1:1884"
        max_connections = 500

        [[listeners]]
        type = "wss"
        bind = "[::1]:8084"
        certfile = "/c.pem"
        keyfile = "/k.pem"
        cacertfile = "/ca.pem"
        verify_peer = true
        fail_if_no_peer_cert = true
        path = "/ws"

        [mqtt]
        allow_anonymous = false
        idle_timeout = 2.5
        max_packet_size = 4096
        max_clientid_len = 100
        max_topic_levels = 8
        max_topic_length = 200
        max_topic_alias = 10
        receive_maximum = 7
        max_inflight = 9
        max_queued_messages = 11
        queue_qos0 = false
        max_awaiting_rel = 12
        retry_interval = 4
        session_expiry_interval = 13
        max_session_expiry_interval = 14
        server_keep_alive = 15
        keepalive_backoff = 2.0
        max_qos = 1
        retain_available = false
        wildcard_subscription = false
        shared_subscription = false
        shared_subscription_strategy = "hash_topic"

        [sys]
        interval = 5
        """)
        XCTAssertEqual(c.nodeName, "edge-1@10.0.0.1")
        XCTAssertEqual(c.logLevel, .debug)
        XCTAssertEqual(c.sysInterval, 5)

        XCTAssertEqual(c.listeners.count, 2)
        var tcp = ListenerConfig(kind: .tcp, host: "127.0.0.1", port: 1884)
        tcp.maxConnections = 500
        XCTAssertEqual(c.listeners[0], tcp)
        var wss = ListenerConfig(kind: .wss, host: "::1", port: 8084)
        wss.certFile = "/c.pem"
        wss.keyFile = "/k.pem"
        wss.caCertFile = "/ca.pem"
        wss.verify = .required  // verify_peer + fail_if_no_peer_cert, the older spelling
        wss.path = "/ws"
        XCTAssertEqual(c.listeners[1], wss)

        var m = MQTTConfig()
        m.allowAnonymous = false
        m.idleTimeout = 2.5
        m.maxPacketSize = 4096
        m.maxClientIdLength = 100
        m.maxTopicLevels = 8
        m.maxTopicLength = 200
        m.maxTopicAlias = 10
        m.receiveMaximum = 7
        m.maxInflight = 9
        m.maxQueuedMessages = 11
        m.queueQoS0 = false
        m.maxAwaitingRel = 12
        m.retryInterval = 4
        m.sessionExpiryInterval = 13
        m.maxSessionExpiryInterval = 14
        m.serverKeepAlive = 15
        m.keepaliveBackoff = 2.0
        m.maxQoS = 1
        m.retainAvailable = false
        m.wildcardSubscription = false
        m.sharedSubscription = false
        m.sharedStrategy = .hash_topic
        XCTAssertEqual(c.mqtt, m)
    }

    func testListenerTLSOptions() throws {
        let c = try ConfigLoader.parse("""
        [[listeners]]
        type = "tls"
        bind = "0.0.0.0:8883"
        certfile = "/c.pem"
        keyfile = "/k.pem"
        cacertfile = "/ca.pem"
        verify = "optional"
        min_tls_version = "tlsv1.3"
        ciphers = "ECDHE-RSA-AES128-GCM-SHA256"
        supported_groups = "x25519:P-256"
        crlfile = "/crl.pem"
        peer_cert_as_username = "cn"
        peer_cert_as_clientid = "dn"
        max_conn_rate = 50
        backlog = 64
        log_limit = 3
        log_interval = 2

        [[listeners]]
        type = "tls"
        bind = "0.0.0.0:8884"
        certfile = "/c.pem"
        keyfile = "/k.pem"
        cacertfile = "/ca.pem"
        verify_peer = true
        """)
        let l = c.listeners[0]
        XCTAssertEqual(l.verify, .optional)
        XCTAssertEqual(l.minTLSVersion, .tlsv1_3)
        XCTAssertEqual(l.ciphers, "ECDHE-RSA-AES128-GCM-SHA256")
        XCTAssertEqual(l.supportedGroups, "x25519:P-256")
        XCTAssertNil(c.listeners[1].supportedGroups, "no list: swift-nio-ssl's defaults")
        XCTAssertEqual(l.crlFile, "/crl.pem")
        XCTAssertEqual(l.peerCertAsUsername, .cn)
        XCTAssertEqual(l.peerCertAsClientId, .dn)
        XCTAssertEqual(l.maxConnRate, 50)
        XCTAssertEqual(l.backlog, 64)
        XCTAssertEqual(l.logLimit, 3)
        XCTAssertEqual(l.logInterval, 2)
        XCTAssertEqual(c.listeners[1].verify, .optional, "verify_peer alone is verify = optional")
    }

    func testListenerTLSOptionErrorsNameTheKey() {
        let tls = "[[listeners]]\ntype = \"tls\"\nbind = \"0.0.0.0:1\"\ncertfile = \"/c\"\nkeyfile = \"/k\"\n"
        let cases: [(String, String)] = [
            (tls + "verify = \"required\"\n", "listeners.cacertfile"),
            (tls + "cacertfile = \"/ca\"\nverify = \"sometimes\"\n", "listeners.verify"),
            (tls + "cacertfile = \"/ca\"\nverify = \"required\"\nverify_peer = true\n", "listeners.verify"),
            (tls + "min_tls_version = \"ssl3\"\n", "listeners.min_tls_version"),
            (tls + "supported_groups = \"x448\"\n", "listeners.supported_groups"),
            (tls + "supported_groups = \"\"\n", "listeners.supported_groups"),
            ("[[listeners]]\nbind = \"0.0.0.0:1\"\nsupported_groups = \"x25519\"\n", "listeners.supported_groups"),
            (tls + "peer_cert_as_username = \"cn\"\n", "listeners.peer_cert_as_username"),
            (tls + "cacertfile = \"/ca\"\nverify = \"optional\"\npeer_cert_as_clientid = \"email\"\n", "listeners.peer_cert_as_clientid"),
            (tls + "crlfile = \"/crl\"\n", "listeners.crlfile"),
            ("[[listeners]]\nbind = \"0.0.0.0:1\"\nverify = \"optional\"\n", "listeners.verify"),
            ("[[listeners]]\ntype = \"tls\"\nbind = \"0.0.0.0:1\"\n", "listeners.certfile"),
        ]
        for (text, key) in cases {
            XCTAssertThrowsError(try ConfigLoader.parse(text), text) { e in
                XCTAssertEqual((e as? ConfigError)?.key, key, text)
            }
        }
    }

    func testSupportedGroupsByNameAndAliasInOrder() {
        XCTAssertEqual(try TLSGroupNames.parse("X25519MLKEM768:x25519:prime256v1:P-384:secp521r1").get(),
                       [0x11EC, 0x1D, 0x17, 0x18, 0x19])
        XCTAssertEqual(try TLSGroupNames.parse("P-256, X25519, p-256").get(), [0x17, 0x1D], "case-insensitive, duplicates once")
        guard case .failure(let e) = TLSGroupNames.parse("x25519:brainpoolP256r1") else { return XCTFail("accepted") }
        XCTAssertTrue(e.text.contains("\"brainpoolP256r1\""), e.text)
        XCTAssertTrue(e.text.contains("X25519MLKEM768"), "the error lists the known names: \(e.text)")
    }

    func testListenerTypeDefaultsToTCP() throws {
        let c = try ConfigLoader.parse("[[listeners]]\nbind = \"0.0.0.0:1\"\n")
        XCTAssertEqual(c.listeners, [ListenerConfig(kind: .tcp, host: "0.0.0.0", port: 1)])
    }

    func testEmptyListenerArrayMeansNoListeners() throws {
        XCTAssertEqual(try ConfigLoader.parse("listeners = []\n").listeners, [])
    }

    func testUnknownKeyNamesKeyAndLine() {
        let e = parseError("""
        [mqtt]
        max_inflight = 10
        max_infligth = 20
        """)
        XCTAssertEqual(e?.key, "mqtt.max_infligth")
        XCTAssertEqual(e?.line, 3)
    }

    func testUnknownTopLevelKey() {
        let e = parseError("[node]\nname = \"x\"\n\nbogus = 1\n")
        // "bogus" after [node] belongs to the node table in TOML.
        XCTAssertEqual(e?.key, "node.bogus")
        XCTAssertEqual(e?.line, 4)
        let top = parseError("bogus = 1\n")
        XCTAssertEqual(top?.key, "bogus")
        XCTAssertEqual(top?.line, 1)
    }

    func testUnknownSection() {
        let e = parseError("[mqtt]\nmax_qos = 1\n[authx]\nfile = \"x\"\n")
        XCTAssertEqual(e?.key, "authx")
    }

    func testUnknownListenerKey() {
        let e = parseError("[[listeners]]\nbind = \"0.0.0.0:1883\"\nport = 1\n")
        XCTAssertEqual(e?.key, "listeners.port")
        XCTAssertEqual(e?.line, 3)
    }

    func testSameKeyInAnotherSectionDoesNotConfuseTheLine() {
        let e = parseError("""
        [sys]
        interval = 5

        [mqtt]
        interval = 5
        """)
        XCTAssertEqual(e?.key, "mqtt.interval")
        XCTAssertEqual(e?.line, 5)
    }

    func testWrongTypeNamesKeyAndLine() {
        let e = parseError("""
        # limits
        [mqtt]
        max_qos = 1
        max_inflight = "ten"
        """)
        XCTAssertEqual(e?.key, "mqtt.max_inflight")
        XCTAssertEqual(e?.line, 4)
    }

    func testWrongTypeForBoolAndString() {
        let b = parseError("[mqtt]\nqueue_qos0 = 1\n")
        XCTAssertEqual(b?.key, "mqtt.queue_qos0")
        XCTAssertEqual(b?.line, 2)
        let s = parseError("\n[node]\nname = 42\n")
        XCTAssertEqual(s?.key, "node.name")
        XCTAssertEqual(s?.line, 3)
    }

    func testSectionThatIsNotATable() {
        let e = parseError("mqtt = 1\n")
        XCTAssertEqual(e?.key, "mqtt")
        XCTAssertEqual(e?.line, 1)
    }

    func testIntegerAcceptedWhereANumberIsExpected() throws {
        XCTAssertEqual(try ConfigLoader.parse("[mqtt]\nidle_timeout = 3\n").mqtt.idleTimeout, 3)
        XCTAssertEqual(try ConfigLoader.parse("[mqtt]\nretry_interval = 0.5\n").mqtt.retryInterval, 0.5)
    }

    func testParkAfter() throws {
        XCTAssertEqual(BrokerConfig().mqtt.parkAfter, 15)
        XCTAssertEqual(try ConfigLoader.parse("[mqtt]\npark_after = 0\n").mqtt.parkAfter, 0)
        XCTAssertEqual(try ConfigLoader.parse("[mqtt]\npark_after = 2.5\n").mqtt.parkAfter, 2.5)
        XCTAssertEqual(parseError("[mqtt]\npark_after = -1\n")?.key, "mqtt.park_after")
    }

    func testFloatRefusedWhereAnIntegerIsExpected() {
        let e = parseError("[mqtt]\nmax_inflight = 1.5\n")
        XCTAssertEqual(e?.key, "mqtt.max_inflight")
        XCTAssertEqual(e?.line, 2)
    }

    func testOutOfRangeValuesAreRefused() {
        XCTAssertEqual(parseError("[mqtt]\nmax_qos = 3\n")?.key, "mqtt.max_qos")
        XCTAssertEqual(parseError("[mqtt]\nmax_packet_size = 10\n")?.line, 2)
        XCTAssertEqual(parseError("[mqtt]\nreceive_maximum = 0\n")?.key, "mqtt.receive_maximum")
        XCTAssertEqual(parseError("[mqtt]\nkeepalive_backoff = 0.5\n")?.key, "mqtt.keepalive_backoff")
        XCTAssertEqual(parseError("[sys]\ninterval = -1\n")?.key, "sys.interval")
    }

    func testSyntaxErrorReportsLine() {
        let e = parseError("""
        [mqtt]
        max_qos = 1
        max_inflight = = 2
        """)
        XCTAssertEqual(e?.key, "(syntax)")
        XCTAssertEqual(e?.line, 3)
    }

    func testDuplicateKeyIsASyntaxError() {
        let e = parseError("[mqtt]\nmax_qos = 1\nmax_qos = 2\n")
        XCTAssertEqual(e?.key, "(syntax)")
        XCTAssertEqual(e?.line, 3)
    }

    func testInvalidLogLevelAndNodeName() {
        XCTAssertEqual(parseError("[log]\nlevel = \"loud\"\n")?.key, "log.level")
        XCTAssertEqual(parseError("[node]\nname = \"a/b\"\n")?.key, "node.name")
        XCTAssertEqual(parseError("[node]\nname = \"\"\n")?.key, "node.name")
    }

    func testErrorDescriptionNamesKeyAndLine() {
        let e = parseError("[mqtt]\nnope = 1\n")!
        XCTAssertTrue(e.description.contains("line 2"), e.description)
        XCTAssertTrue(e.description.contains("mqtt.nope"), e.description)
    }

    // MARK: Listeners

    func testBindIPv4() {
        XCTAssertTrue(ConfigLoader.Reader.splitBind("127.0.0.1:1883")! == ("127.0.0.1", 1883))
        XCTAssertTrue(ConfigLoader.Reader.splitBind("0.0.0.0:0")! == ("0.0.0.0", 0))
        XCTAssertTrue(ConfigLoader.Reader.splitBind("localhost:65535")! == ("localhost", 65535))
    }

    func testBindIPv6InBrackets() {
        XCTAssertTrue(ConfigLoader.Reader.splitBind("[::1]:1883")! == ("::1", 1883))
        XCTAssertTrue(ConfigLoader.Reader.splitBind("[::]:8883")! == ("::", 8883))
    }

    func testBadBindValuesAreRefused() {
        for bad in ["localhost", "127.0.0.1", ":1883", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                    "127.0.0.1:abc", "[::1]", "[::1]1883", "[::1:1883", "[]:1883", ""] {
            XCTAssertNil(ConfigLoader.Reader.splitBind(bad), bad)
        }
    }

    func testBadBindInFileNamesKeyAndLine() {
        let e = parseError("[[listeners]]\ntype = \"tcp\"\nbind = \"1883\"\n")
        XCTAssertEqual(e?.key, "listeners.bind")
        XCTAssertEqual(e?.line, 3)
    }

    func testListenerWithoutBindIsRefused() {
        XCTAssertEqual(parseError("[[listeners]]\ntype = \"tcp\"\n")?.key, "listeners.bind")
    }

    func testUnknownListenerTypeIsRefused() {
        let e = parseError("[[listeners]]\ntype = \"udp\"\nbind = \"0.0.0.0:1\"\n")
        XCTAssertEqual(e?.key, "listeners.type")
        XCTAssertEqual(e?.line, 2)
    }

    func testTLSListenerWithoutCertfileIsRefused() {
        let e = parseError("[[listeners]]\ntype = \"tls\"\nbind = \"0.0.0.0:8883\"\nkeyfile = \"/k.pem\"\n")
        XCTAssertEqual(e?.key, "listeners.certfile")
        XCTAssertTrue(e?.message.contains("certfile") ?? false)
    }

    func testWSSListenerWithoutKeyfileIsRefused() {
        let e = parseError("[[listeners]]\ntype = \"wss\"\nbind = \"0.0.0.0:8084\"\ncertfile = \"/c.pem\"\n")
        XCTAssertEqual(e?.key, "listeners.certfile")
    }

    func testVerifyPeerNeedsCACert() {
        let e = parseError("""
        [[listeners]]
        type = "tls"
        bind = "0.0.0.0:8883"
        certfile = "/c.pem"
        keyfile = "/k.pem"
        verify_peer = true
        """)
        XCTAssertEqual(e?.key, "listeners.cacertfile")
    }

    func testListenerPathMustStartWithSlash() {
        let e = parseError("[[listeners]]\ntype = \"ws\"\nbind = \"0.0.0.0:8083\"\npath = \"mqtt\"\n")
        XCTAssertEqual(e?.key, "listeners.path")
        XCTAssertEqual(e?.line, 4)
    }

    func testListenersMustBeAnArrayOfTables() {
        XCTAssertEqual(parseError("listeners = \"tcp\"\n")?.key, "listeners")
        XCTAssertEqual(parseError("listeners = [1]\n")?.key, "listeners")
    }

    // MARK: Shared subscriptions

    func testEverySharedStrategyParses() throws {
        for s in ["random", "round_robin", "sticky", "hash_clientid", "hash_topic"] {
            let c = try ConfigLoader.parse("[mqtt]\nshared_subscription_strategy = \"\(s)\"\n")
            XCTAssertEqual(c.mqtt.sharedStrategy.rawValue, s)
        }
    }

    func testInvalidSharedStrategyIsRefused() {
        let e = parseError("[mqtt]\nmax_qos = 2\nshared_subscription_strategy = \"fastest\"\n")
        XCTAssertEqual(e?.key, "mqtt.shared_subscription_strategy")
        XCTAssertEqual(e?.line, 3)
        XCTAssertTrue(e?.message.contains("round_robin") ?? false)
    }
}

final class DashboardConfigTests: XCTestCase {
    func testDefaultsAreTheSeeds() throws {
        let d = try ConfigLoader.parse("").dashboard
        XCTAssertTrue(d.enabled)
        XCTAssertEqual(d.host, "0.0.0.0")
        XCTAssertEqual(d.port, 18083)
        XCTAssertEqual(d.defaultUsername, "admin")
        XCTAssertEqual(d.defaultPassword, "public")
        XCTAssertFalse(d.prometheusAuth)
    }

    func testListenerForms() throws {
        XCTAssertEqual(try ConfigLoader.parse("[dashboard]\nlistener = 18084").dashboard.port, 18084)
        let v4 = try ConfigLoader.parse("[dashboard]\nlistener = \"127.0.0.1:8080\"").dashboard
        XCTAssertEqual(v4.host, "127.0.0.1")
        XCTAssertEqual(v4.port, 8080)
        let v6 = try ConfigLoader.parse("[dashboard]\nlistener = \"[::1]:8081\"").dashboard
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.port, 8081)
    }

    func testBadValuesNameTheKey() {
        for (text, key) in [("[dashboard]\nlistener = \"nohost\"", "dashboard.listener"),
                            ("[dashboard]\nlistener = \":80\"", "dashboard.listener"),
                            ("[dashboard]\nlistener = 70000", "dashboard.listener"),
                            ("[dashboard]\ncertfile = \"c.pem\"", "dashboard.keyfile"),
                            ("[dashboard]\nlogin_attempts_per_minute = 1", "dashboard.login_attempts_per_minute"),
                            ("[dashboard]\ndefault_password = \"\"", "dashboard.default_password"),
                            ("[dashboard]\nport = 1", "dashboard.port")] {
            XCTAssertThrowsError(try ConfigLoader.parse(text), text) { e in
                XCTAssertEqual((e as? ConfigError)?.key, key, "\(text): \(e)")
            }
        }
    }

    func testEmbeddedExampleFileParses() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../etc/swiftlet.toml")
        let c = try ConfigLoader.parse(String(contentsOf: url, encoding: .utf8))
        XCTAssertEqual(c.dashboard.port, 18083)
    }
}
