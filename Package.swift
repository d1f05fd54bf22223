// swift-tools-version:6.0
import PackageDescription

// Language mode 5: the hot path is confined to NIO event loops by construction
// (see docs/decisions/0001-concurrency.md); Swift 6 strict checking is adopted per
// module once the core stops moving.
let swiftSettings: [SwiftSetting] = []
/// The modules the hot path crosses into (the connection state machine, routing's `Message`):
/// full cross-module optimization in release, so their generic and small functions are
/// specialised and inlined into the runtime as they were when they lived in it (measured with
/// callgrind, docs/decisions/0003-module-split.md).
/// They skip runtime exclusivity checks in release too, as SwiftletCore does (below): the codec's
/// encode and decode, `Message.init` and the machine's accesses were ~1.4 % of a broker's samples in
/// fan-in QoS 1 (docs/benchmarks.md, 2026-12-07).
let hotPathModule: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization", "-enforce-exclusivity=unchecked"], .when(configuration: .release))]
/// SwiftletCore in release: no runtime exclusivity checks. `MQTTConnectionHandler` is a class whose
/// stored structs (`machine`, `ctx.stats`) are mutated on every packet; with checking on, each of
/// those accesses is a `swift_beginAccess`/`swift_endAccess` pair (measured with callgrind, see the
/// commit that added this). Static (compile-time) exclusivity diagnostics are unaffected; debug
/// builds and tests keep the runtime checks.
let uncheckedExclusivity: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
let coreSwiftSettings: [SwiftSetting] = swiftSettings + uncheckedExclusivity

let package = Package(
    name: "swiftlet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "swiftlet", targets: ["swiftlet"]),
        .executable(name: "swiftlet-bench", targets: ["swiftlet-bench"]),
        .executable(name: "swiftlet-ctl", targets: ["swiftlet-ctl"]),
        .executable(name: "swiftlet-sidecar-template", targets: ["swiftlet-sidecar-template"]),
        .executable(name: "swiftlet-auth-http", targets: ["swiftlet-auth-http"]),
        .executable(name: "swiftlet-auth-sql", targets: ["swiftlet-auth-sql"]),
        .executable(name: "swiftlet-auth-redis", targets: ["swiftlet-auth-redis"]),
        .executable(name: "swiftlet-auth-mongo", targets: ["swiftlet-auth-mongo"]),
        .executable(name: "swiftlet-auth-ldap", targets: ["swiftlet-auth-ldap"]),
        .executable(name: "swiftlet-gateways", targets: ["swiftlet-gateways"]),
        .library(name: "SidecarKit", targets: ["SidecarKit"]),
        .library(name: "MQTTCodec", targets: ["MQTTCodec"]),
        .library(name: "SwiftletCore", targets: ["SwiftletCore"]),
        .library(name: "MQTTProtocol", targets: ["MQTTProtocol"]),
        .library(name: "SidecarLinkKit", targets: ["SidecarLinkKit"]),
        .library(name: "SwiftletDashboard", targets: ["SwiftletDashboard"]),
        .library(name: "SwiftletConfig", targets: ["SwiftletConfig"]),
        .library(name: "SwiftletAuth", targets: ["SwiftletAuth"]),
        .library(name: "SwiftletRouting", targets: ["SwiftletRouting"]),
        .library(name: "SwiftletStore", targets: ["SwiftletStore"]),
        .library(name: "SwiftletIPC", targets: ["SwiftletIPC"]),
        .library(name: "AuthBackends", targets: ["AuthBackends"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        // Client certificate names (CN, subject DN) and CRLs: already in the graph through swift-nio-ssl.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.19.4"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
    ],
    targets: [
        .target(
            name: "MQTTCodec",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings + uncheckedExclusivity
        ),
        .target(
            name: "SwiftletIPC",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // The system's OpenSSL libcrypto: the broker signs TLS handshakes with RSA keys through
        // it (SystemRSAKey.swift); TLS itself is swift-nio-ssl's BoringSSL.
        .systemLibrary(
            name: "CLibCrypto",
            path: "Sources/CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // What every database auth sidecar shares (and the built-in ACL): password hash checks,
        // emqttd's ACL rule semantics, placeholders, a connection pool. No database library.
        .target(
            name: "AuthBackends",
            dependencies: [
                "SwiftletIPC",
                "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The one strict TOML reader (typed getters, unknown keys refused, errors naming the
        // dotted key and line) of the broker and of every sidecar (through SidecarKit).
        .target(
            name: "StrictTOML",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The broker's configuration: types with their embedded defaults and the loader.
        // Everything else reads it; it reads nothing of theirs.
        .target(
            name: "SwiftletConfig",
            dependencies: [
                "StrictTOML",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // What routing moves: the shared message (encoded once), subscription options, topic
        // filter matching and the retained store. No sessions: the trie that indexes them
        // stays with the runtime.
        .target(
            name: "SwiftletRouting",
            dependencies: [
                "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)] + hotPathModule
        ),
        // The durable store: sessions, subscriptions, queued and retained messages in one
        // SQLite file written by one thread (docs/persistence.md).
        .target(
            name: "SwiftletStore",
            dependencies: [
                "SwiftletConfig",
                "SwiftletRouting",
                "MQTTCodec",
                "CSQLite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Authentication and authorization: the provider chain with its decision cache, the
        // built-in users and ACL. Knows nothing of connections or sidecars: providers plug in.
        .target(
            name: "SwiftletAuth",
            dependencies: [
                "SwiftletConfig",
                "AuthBackends",
                "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ],
            swiftSettings: swiftSettings // Swift 6 mode needs Sendable closures in AuthChain.fold first
        ),
        // The broker's side of the sidecar protocol as values: the link state machine, the
        // pending-requests table, close reasons, supervision policy and state machine.
        // glibc's allocator figures and malloc_trim, the thread id (swiftlet-ctl recon).
        .target(name: "CSwiftletSys", path: "Sources/CSwiftletSys"),
        .target(
            name: "SidecarLinkKit",
            dependencies: [
                "SwiftletIPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The MQTT protocol of one connection as a state machine: no I/O, no clock, no broker.
        .target(
            name: "MQTTProtocol",
            dependencies: [
                "MQTTCodec",
                "SwiftletConfig",
                "SwiftletRouting",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)] + hotPathModule
        ),
        .target(
            name: "SwiftletCore",
            dependencies: [
                "CSwiftletSys",
                "MQTTProtocol",
                "SidecarLinkKit",
                "SwiftletConfig",
                "SwiftletAuth",
                "SwiftletRouting",
                "SwiftletStore",
                "AuthBackends",
                "MQTTCodec",
                "SwiftletIPC",
                "CSQLite",
                "CLibCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ],
            swiftSettings: coreSwiftSettings
        ),
        .executableTarget(
            name: "swiftlet",
            dependencies: [
                "SwiftletCore",
                "SwiftletDashboard",
                "SwiftletRouting",
                "MQTTCodec",
                "SwiftletConfig",
                "SwiftletStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/broker",
            swiftSettings: swiftSettings
        ),
        // The dashboard: web UI, REST API (/api/v5) and Prometheus on its own event loops.
        .target(
            name: "SwiftletDashboard",
            dependencies: [
                "SwiftletCore",
                "SwiftletConfig",
                "SwiftletRouting",
                "MQTTCodec",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            resources: [.copy("www")]
        ),
        .target(
            name: "SidecarKit",
            dependencies: [
                "StrictTOML",
                "SwiftletIPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "swiftlet-sidecar-template",
            dependencies: [
                "SidecarKit",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-template",
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // emqttd_auth_http's options, placeholders and decisions, without libcurl (unit-tested).
        .target(
            name: "AuthHTTP",
            dependencies: ["SidecarKit", "SwiftletIPC"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "swiftlet-auth-http",
            dependencies: [
                "AuthHTTP",
                "SidecarKit",
                "CCurl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-auth-http",
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CHiredis",
            path: "Sources/CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // emqttd_auth_redis's options, commands and decisions, without hiredis (unit-tested).
        .target(
            name: "AuthRedis",
            dependencies: ["AuthBackends", "SidecarKit", "SwiftletIPC", .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "swiftlet-auth-redis",
            dependencies: [
                "AuthRedis",
                "AuthBackends",
                "SidecarKit",
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-auth-redis",
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CMongoc",
            path: "Sources/CMongoc",
            pkgConfig: "libmongoc-1.0",
            providers: [.apt(["libmongoc-dev", "libbson-dev"])]
        ),
        // emqttd_auth_mongo's options, selectors and document -> decision, without libmongoc
        // (unit-tested against a fake database).
        .target(
            name: "AuthMongo",
            dependencies: [
                "AuthBackends", "SidecarKit", "SwiftletIPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "swiftlet-auth-mongo",
            dependencies: [
                "AuthMongo", "AuthBackends", "SidecarKit", "CMongoc",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-auth-mongo",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .systemLibrary(
            name: "CLDAP",
            path: "Sources/CLDAP",
            pkgConfig: "ldap",
            providers: [.apt(["libldap-dev"])]
        ),
        // emqttd_auth_ldap's options, RFC 4514 / 4515 escaping and decisions (bind mode, search
        // mode, superuser group, ACL attributes), without libldap (unit-tested).
        .target(
            name: "AuthLDAP",
            dependencies: ["AuthBackends", "SidecarKit", "SwiftletIPC", .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "swiftlet-auth-ldap",
            dependencies: [
                "AuthLDAP",
                "AuthBackends",
                "SidecarKit",
                "CLDAP",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-auth-ldap",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .systemLibrary(
            name: "CMariaDB",
            path: "Sources/CMariaDB",
            pkgConfig: "libmariadb",
            providers: [.apt(["libmariadb-dev"])]
        ),
        .systemLibrary(
            name: "CPQ",
            path: "Sources/CPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // emqttd_auth_mysql / emqttd_auth_pgsql options and decisions, without the client
        // libraries (unit-tested against a fake database).
        .target(
            name: "AuthSQL",
            dependencies: [
                "AuthBackends", "SidecarKit", "SwiftletIPC",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "swiftlet-auth-sql",
            dependencies: [
                "AuthSQL", "AuthBackends", "SidecarKit", "CMariaDB", "CPQ",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-auth-sql",
            swiftSettings: swiftSettings
        ),
        // What every gateway of swiftlet-gateways shares: the MQTT client side of a gateway
        // session (BrokerClient, a state machine) and its bridge onto SidecarKit's sessions,
        // listener addresses, counters.
        .target(
            name: "GatewayKit",
            dependencies: [
                "MQTTCodec", "SidecarKit", "StrictTOML",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // emqttd_stomp: STOMP 1.0/1.1/1.2 frame codec, the channel state machine, and the
        // connection driver shared by the TCP listener and SockJS.
        .target(
            name: "GatewaySTOMP",
            dependencies: [
                "GatewayKit", "MQTTCodec", "SwiftletRouting", "StrictTOML",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // emqttd_sn: the MQTT-SN 1.2 datagram codec and the per-client channel state machine.
        .target(
            name: "GatewayMQTTSN",
            dependencies: [
                "GatewayKit", "MQTTCodec", "StrictTOML",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // emqttd_sockjs: SockJS 0.3 frames, transports and paths, and the demo page's assets.
        .target(
            name: "GatewaySockJS",
            dependencies: ["GatewayKit", "StrictTOML"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "swiftlet-gateways",
            dependencies: [
                "GatewayKit", "GatewayMQTTSN", "GatewaySTOMP", "GatewaySockJS", "SidecarKit", "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/sidecar-gateways",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "swiftlet-ctl",
            dependencies: [
                "SwiftletCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/ctl",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "swiftlet-bench",
            dependencies: [
                "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            path: "Sources/bench",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwiftletIPCTests",
            dependencies: ["SwiftletIPC", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "SidecarKitTests",
            dependencies: ["SidecarKit", "SwiftletIPC", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(
            name: "AuthHTTPTests",
            dependencies: ["AuthHTTP", "SidecarKit", "SwiftletIPC"]
        ),
        .testTarget(
            name: "AuthRedisTests",
            dependencies: ["AuthRedis", "AuthBackends", "SidecarKit", "SwiftletIPC",
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "AuthLDAPTests",
            dependencies: ["AuthLDAP", "AuthBackends", "SidecarKit", "SwiftletIPC",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "AuthBackendsTests",
            dependencies: ["AuthBackends", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "AuthSQLTests",
            dependencies: ["AuthSQL", "AuthBackends", "SidecarKit", "SwiftletIPC",
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "AuthMongoTests",
            dependencies: ["AuthMongo", "AuthBackends", "SidecarKit", "SwiftletIPC",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["GatewayKit", "GatewayMQTTSN", "GatewaySTOMP", "GatewaySockJS", "MQTTCodec", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "MQTTCodecTests",
            dependencies: ["MQTTCodec", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "SwiftletAuthTests",
            dependencies: ["SwiftletAuth", "SwiftletConfig", "AuthBackends",
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        .testTarget(
            name: "SwiftletConfigTests",
            dependencies: ["SwiftletConfig", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "MQTTProtocolTests",
            dependencies: [
                "MQTTProtocol", "MQTTCodec", "SwiftletConfig", "SwiftletRouting",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwiftletDashboardTests",
            dependencies: [
                "SwiftletDashboard",
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SidecarLinkKitTests",
            dependencies: [
                "SidecarLinkKit", "SwiftletIPC",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SwiftletCoreTests",
            dependencies: [
                "SwiftletCore", "SwiftletConfig", "CSwiftletSys", "SwiftletAuth", "SwiftletRouting", "SwiftletStore", "MQTTCodec",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)

// libFuzzer targets (docs/fuzzing.md, scripts/fuzz). Their main calls libFuzzer's driver, so
// they link only when built with `-sanitize=fuzzer`. They are declared only when SWIFTLET_FUZZ
// is set, so `swift build` and `swift build --build-tests` never see them.
if Context.environment["SWIFTLET_FUZZ"] != nil {
    package.products += [
        .executable(name: "fuzz-mqtt", targets: ["fuzz-mqtt"]),
        .executable(name: "fuzz-ipc", targets: ["fuzz-ipc"]),
        .executable(name: "fuzz-config", targets: ["fuzz-config"]),
        .executable(name: "fuzz-gateways", targets: ["fuzz-gateways"]),
    ]
    package.targets += [
        .systemLibrary(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        .executableTarget(
            name: "fuzz-mqtt",
            dependencies: ["CLibFuzzer", "MQTTCodec", "SwiftletConfig", "MQTTProtocol", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/fuzz-mqtt"
        ),
        .executableTarget(
            name: "fuzz-ipc",
            dependencies: ["CLibFuzzer", "SwiftletIPC", "SidecarLinkKit", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/fuzz-ipc"
        ),
        .executableTarget(
            name: "fuzz-config",
            dependencies: ["CLibFuzzer", "SwiftletConfig"],
            path: "Fuzz/fuzz-config"
        ),
        .executableTarget(
            name: "fuzz-gateways",
            dependencies: ["CLibFuzzer", "GatewaySTOMP", "GatewayMQTTSN", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/fuzz-gateways"
        ),
    ]
}
