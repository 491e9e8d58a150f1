import Benchmark
import Crypto
import Foundation
import WardenAuthority
import WardenCore
import WardenPKI

/// Enrollment throughput, from the raw ECDSA P-256 operations up to the durable batch path.
///
/// Every benchmark processes 1,000 items per iteration (`scalingFactor: .kilo`), so the scaled throughput
/// reads directly as CSRs (or signatures) per second:
/// - `enroll: validate CSR`: PEM + PKCS#10 parse, self-signature verify, policy checks (one thread);
/// - `enroll: issue`: build, sign and DER-encode the device certificate from a validated CSR (one thread);
/// - `enroll: CSR only`: both of the above, per CSR (one thread): Warden's CPU cost per enrollment;
/// - `enroll: durable, jobs N`: `Authority.enrollBatch` over 1,000 rows read from disk into a fresh home,
///   chunks committed to SQLite (WAL, synchronous=FULL): the library path of `warden device enroll --batch`;
/// - `ecdsa p256: sign` / `ecdsa p256: verify`: swift-crypto over a 300-byte message (about a TBS
///   certificate), the ceiling for one core.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(8),
        maxIterations: 30
    )
    Benchmark.teardown = { TemporaryDirectories.removeAll() }

    Benchmark("enroll: validate CSR") { benchmark, fixture in
        for index in benchmark.scaledIterations {
            let request = fixture.requests[index % fixture.requests.count]
            blackHole(try fixture.ca.validateCSR(request.pem, deviceID: request.deviceID, source: "bench"))
        }
    } setup: {
        try EnrollFixture()
    }

    Benchmark("enroll: issue") { (benchmark: Benchmark, state: (fixture: EnrollFixture, validated: [ValidatedCSR])) in
        let now = Date()
        for index in benchmark.scaledIterations {
            blackHole(try state.fixture.ca.issue(state.validated[index % state.validated.count], validity: nil, now: now).der)
        }
    } setup: {
        let fixture = try EnrollFixture()
        let validated = try fixture.requests.map { try fixture.ca.validateCSR($0.pem, deviceID: $0.deviceID, source: "bench") }
        return (fixture: fixture, validated: validated)
    }

    Benchmark("enroll: CSR only") { benchmark, fixture in
        let now = Date()
        for index in benchmark.scaledIterations {
            let request = fixture.requests[index % fixture.requests.count]
            let validated = try fixture.ca.validateCSR(request.pem, deviceID: request.deviceID, source: "bench")
            blackHole(try fixture.ca.issue(validated, validity: nil, now: now).der)
        }
    } setup: {
        try EnrollFixture()
    }

    for jobs in [1, 2] {
        Benchmark(
            "enroll: durable, jobs \(jobs)",
            configuration: .init(maxDuration: .seconds(15), maxIterations: 12)
        ) { benchmark, fixture in
            // A fresh CA and registry each iteration, so every row is a new enrollment; made before the clock starts.
            let home = try EnrollFixture.makeHome(in: fixture.directory)
            defer { try? FileManager.default.removeItem(atPath: home) }
            let authority = try Authority.open(home: WardenHome(path: home), passphrase: EnrollFixture.passphrase, actor: "bench")
            var enrolled = 0
            benchmark.startMeasurement()
            try authority.enrollBatch(fixture.rows, jobs: jobs, validity: nil, now: Date()) { results in
                enrolled += results.count(where: { $0.status == .enrolled })
            }
            benchmark.stopMeasurement()
            guard enrolled == fixture.rows.count else {
                throw WardenError.internal("durable benchmark enrolled \(enrolled) of \(fixture.rows.count) rows")
            }
        } setup: {
            try EnrollFixture()
        }
    }

    Benchmark("ecdsa p256: sign") { benchmark, key in
        let message = Data((0..<300).map { UInt8(truncatingIfNeeded: $0) })
        for _ in benchmark.scaledIterations {
            blackHole(try key.signature(for: message))
        }
    } setup: {
        P256.Signing.PrivateKey()
    }

    Benchmark("ecdsa p256: verify") {
        (benchmark: Benchmark, input: (key: P256.Signing.PublicKey, signature: P256.Signing.ECDSASignature, message: Data)) in
        for _ in benchmark.scaledIterations {
            blackHole(input.key.isValidSignature(input.signature, for: input.message))
        }
    } setup: {
        let key = P256.Signing.PrivateKey()
        let message = Data((0..<300).map { UInt8(truncatingIfNeeded: $0) })
        return (key: key.publicKey, signature: try key.signature(for: message), message: message)
    }
}
