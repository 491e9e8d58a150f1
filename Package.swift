// swift-tools-version:6.1
import PackageDescription

// Warden: a security and device-provisioning authority for IoT fleets.
//
// Dependency arrows point one way only:
//   warden (exe) -> WardenCLI -> WardenServer -> WardenBroker -> WardenAuthority -> WardenStore -> WardenPKI -> WardenCore
//   WardenBroker -> WardenPolicy, WardenMQTT -> CMosquitto (libmosquitto)
//   WardenAuthority, WardenServer, WardenCLI -> WardenUpdate -> WardenPKI (TUF metadata, block index; shared with the agent)
// Each third-party framework is imported by exactly one module:
//   X509, SwiftASN1, Crypto -> WardenPKI;  GRDB -> WardenStore;  CMosquitto -> WardenMQTT;  CCurl -> WardenHTTPClient;
//   Hummingbird, NIO, NIOSSL, ServiceLifecycle, Prometheus, Metrics, Logging -> WardenServer.
// ArgumentParser is the one exception: each executable has its own thin command-tree module
// (WardenCLI, EdgeAgentCLI), because the agent must never link the authority's CLI.
//   warden-agent (exe) -> EdgeAgentCLI -> EdgeAgent -> EdgeCore, WardenUpdate, WardenPKI, WardenCore, WardenMQTT, WardenHTTPClient
//   WardenHTTPClient -> CCurl (libcurl, opened with dlopen on first use): the agent's HTTPS client (private CA trust, client certificates).
// EdgeAgent (the agent runtime: identity, TUF client, config verification, MQTT session) never depends on WardenStore,
// WardenAuthority, WardenBroker, WardenServer or WardenCLI: the agent must not link the authority.

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "warden",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "warden", targets: ["warden"]),
        .library(name: "WardenPKI", targets: ["WardenPKI"]),
        .library(name: "WardenStore", targets: ["WardenStore"]),
        .library(name: "WardenAuthority", targets: ["WardenAuthority"]),
        .library(name: "WardenUpdate", targets: ["WardenUpdate"]),
        .executable(name: "warden-agent", targets: ["warden-agent"]),
        .library(name: "EdgeCore", targets: ["EdgeCore"]),
        // For Benchmarks/PolicyBenchmarks.
        .library(name: "WardenPolicy", targets: ["WardenPolicy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(name: "WardenCore", swiftSettings: strict),
        .target(
            name: "WardenPKI",
            dependencies: [
                "WardenCore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "WardenStore",
            dependencies: [
                "WardenCore", "WardenPKI",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // libmosquitto, wrapped by WardenMQTT only.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        // Async MQTT v5 client over libmosquitto (mTLS). The only CMosquitto importer; C types never leave it.
        .target(name: "WardenMQTT", dependencies: ["CMosquitto", "WardenCore"], swiftSettings: strict),
        // libcurl, wrapped by WardenHTTPClient only.
        // libcurl, opened with dlopen on the first HTTPS transfer (headers from libcurl4-openssl-dev), so that its
        // forty-odd shared libraries are not loaded and resident in an agent that seldom needs HTTPS.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        // HTTPS client over libcurl (private CA trust, mutual TLS, bounded bodies). The only CCurl importer.
        .target(name: "WardenHTTPClient", dependencies: ["CCurl", "WardenCore"], swiftSettings: strict),
        // Policy documents and their compilation to Mosquitto dynamic-security roles. Pure Swift.
        .target(name: "WardenPolicy", dependencies: ["WardenCore"], swiftSettings: strict),
        // Signed firmware: TUF 1.0 metadata (canonical JSON, threshold signatures, the client update workflow) and the
        // per-block Merkle index used by MQTT block delivery. Shared by the authority and the agent; no authority deps.
        .target(name: "WardenUpdate", dependencies: ["WardenCore", "WardenPKI"], swiftSettings: strict),
        // Mosquitto integration: config generation, process supervision, dynsec control, CRL push.
        .target(
            name: "WardenBroker",
            // EdgeCore (dependency-free) for the telemetry batch wire format shared with the agent.
            dependencies: ["WardenCore", "WardenPKI", "WardenPolicy", "WardenMQTT", "WardenAuthority", "WardenUpdate", "EdgeCore"],
            swiftSettings: strict
        ),
        // The long-running authority: HTTPS (EST, OCSP, CRL, metrics) and the service group that also runs the broker
        // supervisor and CRL refresher. The only importer of Hummingbird, NIO, ServiceLifecycle, Prometheus, Logging.
        .target(
            name: "WardenServer",
            dependencies: [
                "WardenCore", "WardenPKI", "WardenStore", "WardenAuthority", "WardenBroker", "WardenUpdate",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Orchestration shared by the CLI and (later) the server: enroll, revoke, CRL publication.
        .target(name: "WardenAuthority", dependencies: ["WardenCore", "WardenPKI", "WardenStore", "WardenUpdate"], swiftSettings: strict),
        .target(
            name: "WardenCLI",
            dependencies: [
                "WardenCore", "WardenPKI", "WardenStore", "WardenAuthority", "WardenPolicy", "WardenBroker", "WardenServer", "WardenUpdate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "warden", dependencies: ["WardenCLI"], swiftSettings: strict),
        // The edge side never links the authority (WardenStore, WardenCLI).
        .target(name: "EdgeCore", swiftSettings: strict),
        // The agent runtime: device identity (key + CSR), the TUF client over HTTP(S), config verification, and the
        // MQTT session (presence, telemetry drain) over WardenMQTT.
        .target(
            name: "EdgeAgent",
            dependencies: ["EdgeCore", "WardenCore", "WardenPKI", "WardenUpdate", "WardenMQTT", "WardenHTTPClient"],
            swiftSettings: strict
        ),
        .target(
            name: "EdgeAgentCLI",
            dependencies: [
                "EdgeCore", "EdgeAgent", "WardenCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Devices get `make agent`: a release build with the Swift runtime and Foundation linked statically
        // (--static-swift-stdlib), so a device needs no Swift toolchain and keeps fewer mappings resident.
        .executableTarget(name: "warden-agent", dependencies: ["EdgeAgentCLI"], swiftSettings: strict),
        .testTarget(name: "EdgeCoreTests", dependencies: ["EdgeCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EdgeAgentTests", dependencies: ["EdgeAgent", "EdgeCore", "WardenHTTPClient", "WardenUpdate", "WardenPKI", "WardenCore", "WardenTestSupport"]),
        // Shared test helpers: run the built executables, openssl and pkilint as oracles.
        .target(name: "WardenTestSupport", dependencies: ["WardenCore"], path: "Tests/WardenTestSupport"),
        .testTarget(name: "WardenCoreTests", dependencies: ["WardenCore"]),
        .testTarget(name: "WardenMQTTTests", dependencies: ["WardenMQTT", "WardenCore", "WardenTestSupport"]),
        .testTarget(name: "WardenPolicyTests", dependencies: ["WardenPolicy", "WardenCore"]),
        .testTarget(name: "WardenUpdateTests", dependencies: ["WardenUpdate", "WardenPKI", "WardenCore", "WardenTestSupport"]),
        .testTarget(
            name: "WardenBrokerTests",
            dependencies: ["WardenBroker", "WardenPolicy", "WardenMQTT", "WardenAuthority", "WardenPKI", "WardenCore", "WardenUpdate", "WardenTestSupport"]
        ),
        .testTarget(
            name: "WardenServerTests",
            dependencies: [
                "WardenServer", "WardenBroker", "WardenPolicy", "WardenAuthority", "WardenStore", "WardenPKI", "WardenCore", "WardenUpdate",
                "WardenTestSupport",
            ]
        ),
        .testTarget(
            name: "WardenPKITests",
            dependencies: [
                "WardenPKI", "WardenCore", "WardenTestSupport",
                // Tests may build PKI fixtures directly; production modules go through WardenPKI.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "WardenAuthorityTests",
            dependencies: ["WardenAuthority", "WardenStore", "WardenPKI", "WardenCore", "WardenTestSupport"]
        ),
        .testTarget(name: "WardenStoreTests", dependencies: ["WardenStore", "WardenPKI", "WardenCore", "WardenTestSupport"]),
        .testTarget(
            name: "WardenCLITests",
            dependencies: ["WardenCLI", "WardenAuthority", "WardenStore", "WardenPKI", "WardenCore", "WardenUpdate", "WardenTestSupport"]
        ),
    ]
)
