// swift-tools-version:6.1
import PackageDescription

// Warden's benchmarks (ordo-one/benchmark), a package of their own so that the main build never pays for
// the benchmark framework. Run from this directory:
//   swift package --disable-sandbox benchmark                      # every suite
//   swift package --disable-sandbox benchmark --target EnrollBenchmarks
// See docs/PERFORMANCE.md. Each suite appends its own executable target below.

let package = Package(
    name: "WardenBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "warden", path: ".."),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: []
)

// Enrollment: CSR validation + issuance, the durable batch path, and the raw ECDSA P-256 ceiling.
package.targets += [
    .executableTarget(
        name: "EnrollBenchmarks",
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "WardenPKI", package: "warden"),
            .product(name: "WardenAuthority", package: "warden"),
            .product(name: "Crypto", package: "swift-crypto"),
        ],
        path: "Benchmarks/EnrollBenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
]

// Edge core: samples through a full pipeline, durable appends per commit policy, LZ compression.
package.targets += [
    .executableTarget(
        name: "EdgeCoreBenchmarks",
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "EdgeCore", package: "warden"),
        ],
        path: "Benchmarks/EdgeCoreBenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
]

// Policy: decisions per second with 10,000 devices and 100 statements (Cedar reference: scripts/bench-cedar.py).
package.targets += [
    .executableTarget(
        name: "PolicyBenchmarks",
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "WardenPolicy", package: "warden"),
        ],
        path: "Benchmarks/PolicyBenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
]

// Firmware metadata: re-signing targets/snapshot/timestamp with 10,000 targets, client-side verify, on-disk add.
package.targets += [
    .executableTarget(
        name: "TUFBenchmarks",
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "WardenPKI", package: "warden"),
            .product(name: "WardenAuthority", package: "warden"),
            .product(name: "WardenUpdate", package: "warden"),
        ],
        path: "Benchmarks/TUFBenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
]

// OTA block delivery, CPU side: Merkle indexing, the service's per-block encoding, the device's per-block
// verification (end-to-end goodput through Mosquitto: scripts/bench-ota.sh).
package.targets += [
    .executableTarget(
        name: "OTABenchmarks",
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "WardenPKI", package: "warden"),
            .product(name: "WardenUpdate", package: "warden"),
        ],
        path: "Benchmarks/OTABenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
]

// Telemetry: the batch wire format (encode+LZ, decode) and the authority's ingest into SQLite with dedup
// (same-run raw SQLite reference: scripts/bench-telemetry-sqlite.py).
package.targets += [
    .executableTarget(
        name: "TelemetryBenchmarks",
        dependencies: [
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "EdgeCore", package: "warden"),
            .product(name: "WardenStore", package: "warden"),
        ],
        path: "Benchmarks/TelemetryBenchmarks",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
]
