import Benchmark
import Foundation
import WardenAuthority
import WardenCore
import WardenPKI
import WardenUpdate

/// Firmware metadata update time with 10,000 targets (docs/PERFORMANCE.md "Firmware metadata"):
/// - "re-sign in memory": add one target to a 10,000-target targets role, then sign and serialize targets, snapshot and
///   timestamp — the same work scripts/tuf_interop.py `bench 10000` times with python-tuf's Metadata API (the reference);
/// - "firmware add": the whole `FirmwareRepository.add` on disk (read + verify-parse the published metadata, hash and
///   Merkle-index a 64 KiB image, sign, fsync'd atomic writes), keys sealed with 1,000 PBKDF2 iterations so the
///   key-derivation cost (600,000 iterations by default, ≈0.25 s per key) does not hide the metadata work.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal],
        warmupIterations: 1,
        maxDuration: .seconds(20),
        maxIterations: 10
    )
    let count = 10_000
    let targets = makeTargets(count)
    let keys = (targets: SigningKey.generate(.ed25519), snapshot: SigningKey.generate(.ecdsaP256), timestamp: SigningKey.generate(.ed25519))

    Benchmark("Re-sign targets+snapshot+timestamp in memory, 10,000 targets") { benchmark in
        var payload = TargetsMetadata(version: 1, expires: Date().addingTimeInterval(30 * 86_400), targets: targets)
        for iteration in benchmark.scaledIterations {
            payload.version += 1
            payload.targets["new/\(iteration)"] = targets.first!.value
            var signedTargets = SignedMetadata(payload)
            try signedTargets.sign(with: [keys.targets])
            let targetsBytes = signedTargets.fileBytes
            var snapshot = SignedMetadata(
                SnapshotMetadata(
                    version: payload.version, expires: Date().addingTimeInterval(7 * 86_400),
                    meta: ["targets.json": MetaFileInfo(version: payload.version, length: Int64(targetsBytes.count), hashes: ["sha256": Digest.hex(Digest.sha256(targetsBytes))])]))
            try snapshot.sign(with: [keys.snapshot])
            let snapshotBytes = snapshot.fileBytes
            var timestamp = SignedMetadata(
                TimestampMetadata(
                    version: payload.version, expires: Date().addingTimeInterval(86_400),
                    snapshot: MetaFileInfo(version: payload.version, length: Int64(snapshotBytes.count), hashes: ["sha256": Digest.hex(Digest.sha256(snapshotBytes))])))
            try timestamp.sign(with: [keys.timestamp])
            blackHole(timestamp.fileBytes)
        }
    }

    Benchmark("Verify-parse a 10,000-target targets.json (client side)") { benchmark in
        var signed = SignedMetadata(TargetsMetadata(version: 1, expires: Date().addingTimeInterval(86_400), targets: targets))
        try signed.sign(with: [keys.targets])
        let bytes = signed.fileBytes
        let role = TUFRole(keyIDs: [TUFKey(keys.targets.publicKey).keyID], threshold: 1)
        let roleKeys = [role.keyIDs[0]: TUFKey(keys.targets.publicKey)]
        for _ in benchmark.scaledIterations {
            let parsed = try SignedMetadata<TargetsMetadata>.parse(bytes)
            try parsed.verify(role: role, keys: roleKeys)
            blackHole(parsed)
        }
    }

    Benchmark("firmware add on disk, 10,000 published targets", configuration: .init(metrics: [.wallClock, .cpuTotal], maxIterations: 5)) { benchmark in
        let home = NSTemporaryDirectory() + "tuf-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: home) }
        let passphrase = Array("benchmark passphrase".utf8)
        let repository = FirmwareRepository(home: WardenHome(path: home), keyIterations: 1000)
        try repository.initialize(passphrase: passphrase, registry: nil, actor: "bench", now: Date())
        try seed(repository, targets: targets, passphrase: passphrase)
        let image = NSTemporaryDirectory() + "tuf-bench-image-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: image) }
        try Data((0..<65_536).map { UInt8(truncatingIfNeeded: $0) }).write(to: URL(fileURLWithPath: image))
        var version = 1
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            version += 1
            blackHole(
                try repository.add(
                    image: image, name: "bench", version: "\(version).0", hardware: ["board"], passphrase: passphrase, registry: nil,
                    actor: "bench", now: Date()))
        }
        benchmark.stopMeasurement()
    }
}

/// 10,000 entries shaped like Warden's (sha256 + sha512, custom fields), in 100 names.
func makeTargets(_ count: Int) -> [String: TargetFileInfo] {
    var targets: [String: TargetFileInfo] = [:]
    for index in 0..<count {
        let hash = Digest.hex(Digest.sha256(Array(String(index).utf8)))
        targets["fw-\(index % 100)/\(index).0.0"] = TargetFileInfo(
            length: Int64(1_048_576 + index), hashes: ["sha256": hash, "sha512": hash + hash],
            custom: .object([
                "name": .string("fw-\(index % 100)"), "version": .string("\(index).0.0"), "hardware": .array([.string("board-a")]),
                "release_counter": .int(Int64(index + 1)), "block_size": .int(65_536), "merkle_root": .string(hash),
            ]))
    }
    return targets
}

/// Publishes `targets` as targets v2 (+ snapshot v2, timestamp v2) with the repository's own keys (public API only).
func seed(_ repository: FirmwareRepository, targets: [String: TargetFileInfo], passphrase: [UInt8]) throws {
    let root = try repository.currentRoot().payload
    func key(_ role: TUFRoleName) throws -> SigningKey {
        let id = root.role(role).keyIDs[0]
        return try SigningKey.open(pem: try String(contentsOfFile: repository.keysDirectory + "/\(id).pem", encoding: .utf8), passphrase: passphrase)
    }
    let expires = Date().addingTimeInterval(86_400)
    var signedTargets = SignedMetadata(TargetsMetadata(version: 2, expires: expires, targets: targets))
    try signedTargets.sign(with: [try key(.targets)])
    let targetsBytes = signedTargets.fileBytes
    var snapshot = SignedMetadata(
        SnapshotMetadata(version: 2, expires: expires, meta: ["targets.json": MetaFileInfo(version: 2, length: Int64(targetsBytes.count))]))
    try snapshot.sign(with: [try key(.snapshot)])
    let snapshotBytes = snapshot.fileBytes
    var timestamp = SignedMetadata(TimestampMetadata(version: 2, expires: expires, snapshot: MetaFileInfo(version: 2, length: Int64(snapshotBytes.count))))
    try timestamp.sign(with: [try key(.timestamp)])
    try SecureFile.writeAtomically(targetsBytes, to: repository.metadataDirectory + "/2.targets.json")
    try SecureFile.writeAtomically(snapshotBytes, to: repository.metadataDirectory + "/2.snapshot.json")
    try SecureFile.writeAtomically(timestamp.fileBytes, to: repository.metadataDirectory + "/timestamp.json")
}
