import Foundation
import WardenCore

/// A TUF 1.0 client (§5): refreshes the top-level metadata from a ``TUFFetcher``, keeps the trusted copies in a local
/// directory, and downloads target files verified against the trusted targets metadata.
///
/// ```swift
/// var updater = try TUFUpdater(metadataDirectory: dir, fetcher: myFetcher)   // dir/root.json provisioned
/// try await updater.refresh()
/// if let info = updater.targetInfo("sensor/1.2.0") { let image = try await updater.download("sensor/1.2.0", info: info) }
/// ```
///
/// The local directory holds `root.json`, `timestamp.json`, `snapshot.json`, `targets.json` (written atomically,
/// only after verification). Provision it with ``provision(trustedRoot:metadataDirectory:)``.
public struct TUFUpdater: Sendable {
    /// Limits on what the updater downloads (endless-data protection); python-tuf's defaults where it has them.
    public struct Limits: Sendable {
        /// Largest root metadata.
        public var rootBytes = 512 * 1024
        /// Largest timestamp metadata.
        public var timestampBytes = 16 * 1024
        /// Largest snapshot metadata when the timestamp pins no length.
        public var snapshotBytes = 2 * 1024 * 1024
        /// Largest targets metadata when the snapshot pins no length.
        public var targetsBytes = 32 * 1024 * 1024
        /// Most root versions walked in one refresh.
        public var maximumRootRotations = 32

        /// The defaults.
        public init() {}
    }

    /// The local trusted-metadata directory.
    public let metadataDirectory: String
    /// Where bytes come from.
    public let fetcher: any TUFFetcher
    /// Download limits.
    public var limits: Limits
    /// The trusted metadata after the last successful ``refresh()`` (nil before).
    public private(set) var trusted: TrustedMetadataSet?

    /// An updater over a provisioned directory (it must hold `root.json`).
    public init(metadataDirectory: String, fetcher: any TUFFetcher, limits: Limits = Limits()) {
        self.metadataDirectory = metadataDirectory
        self.fetcher = fetcher
        self.limits = limits
    }

    /// Writes the trusted root a device is provisioned with (checked: self-signed by its root threshold).
    public static func provision(trustedRoot bytes: [UInt8], metadataDirectory: String) throws {
        _ = try TrustedMetadataSet(trustedRoot: bytes, now: Date())
        try SecureFile.ensureDirectory(metadataDirectory)
        try SecureFile.writeAtomically(bytes, to: metadataDirectory + "/root.json")
    }

    /// Runs the TUF 1.0 refresh (§5.3–§5.6): root chain, timestamp, snapshot, targets. On any failure nothing
    /// untrusted is kept and the error says which check failed (`.signatureInvalid`, `.verificationFailed`, `.badInput`).
    /// - Parameter now: the time expiry is judged against.
    public mutating func refresh(now: Date = Date()) async throws {
        let rootBytes = try SecureFile.read(metadataDirectory + "/root.json", limit: limits.rootBytes, what: "trusted root metadata")
        var set = try TrustedMetadataSet(trustedRoot: rootBytes, now: now)

        // §5.3: walk N+1.root.json until the repository has no newer one.
        for _ in 0..<limits.maximumRootRotations {
            let next = set.root.payload.version + 1
            guard let bytes = try await fetcher.fetch(.metadata, path: "\(next).root.json", maxLength: limits.rootBytes) else { break }
            try set.updateRoot(bytes)
            try persist(bytes, "root.json")
        }
        try set.checkRootExpiry()

        // §5.4: timestamp, with rollback protection against the locally trusted one (if it still verifies).
        if let local = readLocal("timestamp.json", limit: limits.timestampBytes) {
            _ = try? set.updateTimestamp(local, fromTrustedCache: true)
        }
        guard let timestampBytes = try await fetcher.fetch(.metadata, path: "timestamp.json", maxLength: limits.timestampBytes) else {
            throw WardenError.notFound("the repository has no timestamp.json")
        }
        if try set.updateTimestamp(timestampBytes) { try persist(timestampBytes, "timestamp.json") }
        let pinnedSnapshot = set.timestamp!.payload.snapshot

        // §5.5: snapshot (the local copy if it is the pinned version, else the consistent-snapshot file).
        var snapshotDone = false
        if let local = readLocal("snapshot.json", limit: limits.snapshotBytes) {
            snapshotDone = (try? set.updateSnapshot(local, fromTrustedCache: true)) != nil
        }
        if !snapshotDone {
            let path = set.root.payload.consistentSnapshot ? "\(pinnedSnapshot.version).snapshot.json" : "snapshot.json"
            let limit = pinnedSnapshot.length.map { Int(clamping: $0) } ?? limits.snapshotBytes
            guard let bytes = try await fetcher.fetch(.metadata, path: path, maxLength: limit) else {
                throw WardenError.notFound("the repository has no \(path)")
            }
            try set.updateSnapshot(bytes)
            try persist(bytes, "snapshot.json")
        }

        // §5.6: top-level targets.
        let pinnedTargets = set.snapshot!.payload.meta["targets.json"]
        var targetsDone = false
        if let local = readLocal("targets.json", limit: limits.targetsBytes) {
            var attempt = set
            if (try? attempt.updateTargets(local)) != nil {
                set = attempt
                targetsDone = true
            }
        }
        if !targetsDone {
            guard let pinnedTargets else { throw WardenError(.verificationFailed, "snapshot metadata does not list targets.json") }
            let path = set.root.payload.consistentSnapshot ? "\(pinnedTargets.version).targets.json" : "targets.json"
            let limit = pinnedTargets.length.map { Int(clamping: $0) } ?? limits.targetsBytes
            guard let bytes = try await fetcher.fetch(.metadata, path: path, maxLength: limit) else {
                throw WardenError.notFound("the repository has no \(path)")
            }
            try set.updateTargets(bytes)
            try persist(bytes, "targets.json")
        }
        trusted = set
    }

    /// The trusted entry for target `name` (nil if unknown or before ``refresh()``).
    public func targetInfo(_ name: String) -> TargetFileInfo? {
        trusted?.targets?.payload.targets[name]
    }

    /// Every trusted target, by name.
    public var targets: [String: TargetFileInfo] { trusted?.targets?.payload.targets ?? [:] }

    /// Downloads target `name` and verifies its exact length and every hash before returning it.
    /// Consistent snapshots fetch `<sha256>.<basename>` (TUF 1.0 §5.7.3).
    public func download(_ name: String, info: TargetFileInfo) async throws -> [UInt8] {
        guard let root = trusted?.root.payload else { throw WardenError.internal("download before refresh") }
        guard TUFPath.isSafe(name) else { throw WardenError.badInput("target name '\(name.prefix(100))' is not a safe path") }
        let hash = info.hashes["sha256"] ?? info.hashes.values.sorted().first ?? ""
        let path = root.consistentSnapshot ? TUFPath.consistentTargetPath(name, hash: hash) : name
        guard let bytes = try await fetcher.fetch(.target, path: path, maxLength: Int(clamping: info.length)) else {
            throw WardenError.notFound("the repository has no target file \(path)")
        }
        try info.verify(bytes, name: name)
        return bytes
    }

    func readLocal(_ name: String, limit: Int) -> [UInt8]? {
        try? SecureFile.read(metadataDirectory + "/" + name, limit: limit, what: "local metadata")
    }

    func persist(_ bytes: [UInt8], _ name: String) throws {
        try SecureFile.writeAtomically(bytes, to: metadataDirectory + "/" + name)
    }
}
