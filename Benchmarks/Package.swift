// swift-tools-version: 6.1
// Broker-side allocation benchmarks for Swiftlet, kept out of the root package so CI's normal
// build does not compile ordo-one/benchmark (formerly package-benchmark). Run through
// scripts/bench, or by hand:
//
//   flock /tmp/swift-build.lock swift package --package-path Benchmarks \
//       --scratch-path .build-bench benchmark --target ForwardAllocations
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name (the clone's, which varies), not the
// root manifest's package name.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .standardizedFileURL.lastPathComponent.lowercased()

let package = Package(
    name: "SwiftletBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "ForwardAllocations",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SwiftletCore", package: root),
                .product(name: "SwiftletConfig", package: root),
                .product(name: "MQTTCodec", package: root),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ForwardAllocations",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
