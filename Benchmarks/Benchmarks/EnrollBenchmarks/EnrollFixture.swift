import Foundation
import Synchronization
import WardenAuthority
import WardenCore
import WardenPKI

/// The inputs of the enrollment benchmarks, made once per benchmark in its `setup` hook: a set of distinct
/// P-256 CSRs on disk (and in memory) and a loaded issuing CA.
///
/// Everything lives under one temporary directory that ``TemporaryDirectories/removeAll()`` deletes in the
/// suite's teardown.
struct EnrollFixture: Sendable {
    /// One device's request.
    struct Request: Sendable {
        /// The device id, equal to the CSR's CN.
        let deviceID: DeviceID
        /// The CSR, PEM, as read from disk.
        let pem: [UInt8]
    }

    /// Number of CSRs made, and the number of rows processed per benchmark iteration (`scalingFactor .kilo`).
    static let count = 1_000
    /// The CA passphrase. PBKDF2 iterations are kept low: key decryption is not what is measured.
    static let passphrase = Array("bench-passphrase".utf8)
    static let keyIterations = 1_000

    /// The temporary directory holding everything below.
    let directory: String
    /// The requests, in batch-file order.
    let requests: [Request]
    /// The rows of the batch file (`id,csr_path`), CSR paths absolute.
    let rows: [BatchRow]
    /// An issuing CA loaded from its own home (for the in-memory benchmarks).
    let ca: CertificateAuthority

    /// Makes ``count`` CSRs with `scripts/bench/make_csrs.py` (python3 + cryptography) and a CA.
    init() throws {
        directory = try TemporaryDirectories.make()
        let csrDirectory = directory + "/csrs"
        try Self.run(["python3", Self.repositoryRoot + "/scripts/bench/make_csrs.py", String(Self.count), csrDirectory])
        let batchPath = csrDirectory + "/batch.csv"
        rows = try Authority.parseBatch(Array(try Data(contentsOf: URL(fileURLWithPath: batchPath))), source: batchPath)
        requests = try rows.map { row in
            Request(deviceID: try DeviceID(row.id), pem: Array(try Data(contentsOf: URL(fileURLWithPath: row.csrPath))))
        }
        let home = try Self.makeHome(in: directory)
        ca = try CertificateAuthority.load(layout: CALayout(home: home), passphrase: Self.passphrase)
    }

    /// Creates a fresh CA in a new home under `parent` and returns the home's path.
    static func makeHome(in parent: String) throws -> String {
        let home = parent + "/home-\(UUID().uuidString)"
        _ = try CAInitializer.initialize(
            layout: CALayout(home: home), organization: "Bench", rootValidity: try WardenDuration(parsing: "20y"),
            issuingValidity: try WardenDuration(parsing: "5y"), passphrase: passphrase, now: Date(),
            keyIterations: keyIterations)
        return home
    }

    /// The repository holding this package (`Benchmarks/` is one of its folders).
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // EnrollBenchmarks
            .deletingLastPathComponent()  // Benchmarks (sources)
            .deletingLastPathComponent()  // Benchmarks (package)
            .deletingLastPathComponent().path
    }

    /// Runs `arguments` through `/usr/bin/env`, failing unless it exits 0.
    static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw WardenError.internal(
                "'\(arguments.joined(separator: " "))' exited with \(process.terminationStatus); "
                    + "the enrollment benchmarks need python3 with the 'cryptography' package")
        }
    }
}

/// Temporary directories made by the benchmarks, removed together in the suite's teardown.
enum TemporaryDirectories {
    private static let created = Mutex<[String]>([])

    /// Creates a new private directory under the system temporary directory and remembers it.
    static func make() throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/warden-enroll-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        created.withLock { $0.append(path) }
        return path
    }

    /// Removes every directory made so far.
    static func removeAll() {
        for path in created.withLock({ paths in defer { paths.removeAll() }; return paths }) {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
