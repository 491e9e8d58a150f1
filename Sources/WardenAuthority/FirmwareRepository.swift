import Foundation
import WardenCore
import WardenPKI
import WardenStore
import WardenUpdate

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The authority's TUF 1.0 repository for signed firmware, on disk in the Warden home:
///
/// ```
/// $WARDEN_HOME/tuf/keys/<keyid>.pem          role keys, encrypted PKCS#8 (mode 0600)
/// $WARDEN_HOME/tuf/metadata/N.root.json      every root version (the chain devices walk); root.json = the latest
/// $WARDEN_HOME/tuf/metadata/N.targets.json   consistent-snapshot targets, N.snapshot.json, and timestamp.json
/// $WARDEN_HOME/firmware/<sha256>             images, by content hash, served as targets/<dir/><sha256>.<basename>
/// ```
///
/// The repository state is defined by `timestamp.json` → `N.snapshot.json` → `M.targets.json`, and the root by the
/// highest consecutive `N.root.json`. A change writes new versioned files first and `timestamp.json` last, so a
/// failure at any point leaves the published state as it was (unreferenced files are overwritten by the next change).
/// Every change holds an exclusive lock on `tuf/.lock`, so `warden serve`'s refresher and the CLI never interleave.
public struct FirmwareRepository: Sendable {
    /// How long each role's metadata stays valid when signed.
    public struct Expiries: Sendable {
        /// Root: one year (its keys are offline; re-signing it is a deliberate act).
        public var root: TimeInterval = 365 * 86_400
        /// Targets: 30 days.
        public var targets: TimeInterval = 30 * 86_400
        /// Snapshot: 7 days.
        public var snapshot: TimeInterval = 7 * 86_400
        /// Timestamp: 1 day.
        public var timestamp: TimeInterval = 86_400

        /// The defaults.
        public init() {}

        /// The lifetime of `role`.
        public func lifetime(_ role: TUFRoleName) -> TimeInterval {
            switch role {
            case .root: root
            case .targets: targets
            case .snapshot: snapshot
            case .timestamp: timestamp
            }
        }
    }

    /// The home.
    public let home: WardenHome
    /// Lifetimes of newly signed metadata.
    public var expiries: Expiries
    /// PBKDF2 iterations for new key files (tests lower it; the default is ``EncryptedPKCS8/defaultIterations``).
    public var keyIterations: Int

    /// The repository of `home` (nothing is created until ``initialize(passphrase:registry:actor:now:)``).
    public init(home: WardenHome, expiries: Expiries = Expiries(), keyIterations: Int = EncryptedPKCS8.defaultIterations) {
        self.home = home
        self.expiries = expiries
        self.keyIterations = keyIterations
    }

    /// `$WARDEN_HOME/tuf`.
    public var tufDirectory: String { home.path + "/tuf" }
    /// `$WARDEN_HOME/tuf/keys`.
    public var keysDirectory: String { tufDirectory + "/keys" }
    /// `$WARDEN_HOME/tuf/metadata`: what `/tuf/metadata/` serves.
    public var metadataDirectory: String { tufDirectory + "/metadata" }
    /// `$WARDEN_HOME/firmware`: images by sha256.
    public var firmwareDirectory: String { home.path + "/firmware" }

    /// Whether `firmware keys init` has run.
    public var isInitialized: Bool { SecureFile.mode(of: metadataDirectory + "/1.root.json") != nil }

    // MARK: - Reading the published state

    /// The current (latest) root, found by walking `1.root.json`, `2.root.json`, ... .
    public func currentRoot() throws -> SignedMetadata<RootMetadata> {
        guard isInitialized else {
            throw WardenError.notFound("no firmware repository in '\(tufDirectory)'; run 'warden firmware keys init' first")
        }
        return try readMetadata("\(latestRootVersion()).root.json")
    }

    /// The newest published root version, walking `N+1.root.json` from `known` (a version already seen, so pollers
    /// pay one `stat` per check).
    public func latestRootVersion(from known: Int64 = 1) -> Int64 {
        var version = max(1, known)
        while SecureFile.mode(of: metadataDirectory + "/\(version + 1).root.json") != nil { version += 1 }
        return version
    }

    /// The bytes of the published `timestamp.json`, or nil when there is no repository. Every change of the
    /// published state (an add, a rotation, a re-signing) produces a new timestamp, so pollers compare these bytes
    /// instead of parsing the targets role, which grows with the repository.
    /// - Throws: ``WardenError`` when the file cannot be read.
    public func publishedTimestampBytes() throws -> [UInt8]? {
        guard isInitialized, let path = metadataFile("timestamp.json") else { return nil }
        return try SecureFile.read(path, limit: 1024 * 1024, what: "timestamp metadata")
    }

    /// The bytes of the current root: what devices are provisioned with (`warden firmware root --out`).
    public func trustedRootBytes() throws -> [UInt8] {
        let root = try currentRoot()
        return try SecureFile.read(metadataDirectory + "/\(root.payload.version).root.json", limit: 1024 * 1024, what: "root metadata")
    }

    /// The published timestamp, snapshot and targets.
    public func currentState() throws -> (
        timestamp: SignedMetadata<TimestampMetadata>, snapshot: SignedMetadata<SnapshotMetadata>, targets: SignedMetadata<TargetsMetadata>
    ) {
        let timestamp: SignedMetadata<TimestampMetadata> = try readMetadata("timestamp.json")
        let snapshot: SignedMetadata<SnapshotMetadata> = try readMetadata("\(timestamp.payload.snapshot.version).snapshot.json")
        guard let targetsVersion = snapshot.payload.meta["targets.json"]?.version else {
            throw WardenError.storage("the published snapshot does not list targets.json")
        }
        let targets: SignedMetadata<TargetsMetadata> = try readMetadata("\(targetsVersion).targets.json")
        return (timestamp, snapshot, targets)
    }

    func readMetadata<P: TUFPayload>(_ name: String) throws -> SignedMetadata<P> {
        let bytes = try SecureFile.read(metadataDirectory + "/" + name, limit: SignedMetadata<P>.maximumBytes, what: "metadata file")
        return try SignedMetadata<P>.parse(bytes, what: "\(metadataDirectory)/\(name)")
    }

    /// The path of a published metadata file for `/tuf/metadata/<name>`, or nil (names are `[0-9]+.<role>.json`,
    /// `root.json`, `timestamp.json`; nothing else in the directory is served).
    public func metadataFile(_ name: String) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        let valid: Bool
        switch parts.count {
        case 2: valid = (parts[0] == "timestamp" || parts[0] == "root") && parts[1] == "json"
        case 3:
            valid = !parts[0].isEmpty && parts[0].count <= 19 && parts[0].allSatisfy(\.isASCII) && parts[0].allSatisfy(\.isNumber)
                && ["root", "snapshot", "targets"].contains(parts[1]) && parts[2] == "json"
        default: valid = false
        }
        guard valid else { return nil }
        let path = metadataDirectory + "/" + name
        return SecureFile.mode(of: path) == nil ? nil : path
    }

    /// The image for `/tuf/targets/<path>`, where the last segment is `<sha256>.<basename>` of a current target.
    public func targetFile(_ path: String) -> String? {
        guard TUFPath.isSafe(path) else { return nil }
        let segments = path.split(separator: "/")
        guard let last = segments.last, let dot = last.firstIndex(of: ".") else { return nil }
        let hash = String(last[..<dot])
        guard hash.utf8.count == 64, hash.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        let file = firmwareDirectory + "/" + hash
        return SecureFile.mode(of: file) == nil ? nil : file
    }

    // MARK: - Writing

    /// Runs `body` holding the repository lock (flock on `tuf/.lock`).
    func locked<T>(_ body: () throws -> T) throws -> T {
        try SecureFile.ensureDirectory(tufDirectory)
        return try FileLock.withLock(tufDirectory + "/.lock", wait: nil, busy: "", body)
    }

    /// Writes a metadata file atomically (readable by the server: 0644).
    func publish<P: TUFPayload>(_ metadata: SignedMetadata<P>, as name: String) throws {
        try SecureFile.writeAtomically(metadata.fileBytes, to: metadataDirectory + "/" + name, mode: 0o644)
    }

    /// Signs `payload` with the keys of `role` in `root` that are present in the key directory.
    /// - Throws: `.notFound` if fewer than the role's threshold are available (e.g. root keys moved offline).
    func sign<P: TUFPayload>(_ payload: P, role: TUFRoleName, root: RootMetadata, passphrase: [UInt8]) throws -> SignedMetadata<P> {
        var metadata = SignedMetadata(payload)
        try metadata.sign(with: try loadKeys(role: role, root: root, passphrase: passphrase))
        return metadata
    }

    /// The available private keys of `role` (at least its threshold).
    func loadKeys(role: TUFRoleName, root: RootMetadata, passphrase: [UInt8]) throws -> [SigningKey] {
        let spec = root.role(role)
        var keys: [SigningKey] = []
        for keyID in spec.keyIDs {
            let path = keyPath(keyID)
            guard SecureFile.mode(of: path) != nil else { continue }
            let key = try SigningKey.open(pem: try SecureFile.readText(path, what: "\(role.rawValue) key file"), passphrase: passphrase)
            guard TUFKey(key.publicKey).keyID == keyID else {
                throw WardenError.badInput("key file '\(path)' does not hold the key its name says")
            }
            keys.append(key)
        }
        guard keys.count >= spec.threshold else {
            throw WardenError.notFound(
                "only \(keys.count) of the \(spec.threshold) \(role.rawValue) keys needed are in '\(keysDirectory)'; bring the offline keys back")
        }
        return keys
    }

    func keyPath(_ keyID: String) -> String { keysDirectory + "/" + keyID + ".pem" }

    /// Writes a new key file (0600), refusing to overwrite.
    func storeKey(_ key: SigningKey, passphrase: [UInt8]) throws -> String {
        let keyID = TUFKey(key.publicKey).keyID
        let path = keyPath(keyID)
        guard SecureFile.mode(of: path) == nil else { throw WardenError.alreadyExists("key file '\(path)' already exists") }
        try SecureFile.writeAtomically(Array(try key.sealed(passphrase: passphrase, iterations: keyIterations).utf8), to: path, mode: 0o600)
        return keyID
    }

    /// Signs and publishes new versions of `roles` (a suffix of targets → snapshot → timestamp), each one version
    /// higher than published, with fresh expiries; `targets` overrides the target list. timestamp.json goes last.
    /// - Returns: the published (role, version) pairs.
    func republish(
        _ roles: Set<TUFRoleName>, targets newTargets: [String: TargetFileInfo]? = nil, root: RootMetadata, passphrase: [UInt8], now: Date,
        beforeCommit: () throws -> Void = {}
    ) throws -> [(TUFRoleName, Int64)] {
        let state = try currentState()
        var signed: [(TUFRoleName, Int64)] = []
        var targets = state.targets
        var targetsBytes = try SecureFile.read(
            metadataDirectory + "/\(targets.payload.version).targets.json", limit: SignedMetadata<TargetsMetadata>.maximumBytes)
        if roles.contains(.targets) || newTargets != nil {
            var payload = targets.payload
            payload.version += 1
            payload.expires = now.addingTimeInterval(expiries.targets)
            if let newTargets { payload.targets = newTargets }
            targets = try sign(payload, role: .targets, root: root, passphrase: passphrase)
            targetsBytes = targets.fileBytes
            try SecureFile.writeAtomically(targetsBytes, to: metadataDirectory + "/\(payload.version).targets.json", mode: 0o644)
            signed.append((.targets, payload.version))
        }
        var snapshot = state.snapshot
        var snapshotBytes = try SecureFile.read(
            metadataDirectory + "/\(snapshot.payload.version).snapshot.json", limit: SignedMetadata<SnapshotMetadata>.maximumBytes)
        if roles.contains(.snapshot) || !signed.isEmpty {
            let payload = SnapshotMetadata(
                version: snapshot.payload.version + 1, expires: now.addingTimeInterval(expiries.snapshot),
                meta: ["targets.json": Self.metaInfo(version: targets.payload.version, bytes: targetsBytes)])
            snapshot = try sign(payload, role: .snapshot, root: root, passphrase: passphrase)
            snapshotBytes = snapshot.fileBytes
            try SecureFile.writeAtomically(snapshotBytes, to: metadataDirectory + "/\(payload.version).snapshot.json", mode: 0o644)
            signed.append((.snapshot, payload.version))
        }
        let timestamp = try sign(
            TimestampMetadata(
                version: state.timestamp.payload.version + 1, expires: now.addingTimeInterval(expiries.timestamp),
                snapshot: Self.metaInfo(version: snapshot.payload.version, bytes: snapshotBytes)),
            role: .timestamp, root: root, passphrase: passphrase)
        signed.append((.timestamp, timestamp.payload.version))
        try beforeCommit()
        try publish(timestamp, as: "timestamp.json")
        return signed
    }

    /// A METAFILES entry pinning version, length and sha256.
    static func metaInfo(version: Int64, bytes: [UInt8]) -> MetaFileInfo {
        MetaFileInfo(version: version, length: Int64(bytes.count), hashes: ["sha256": Digest.hex(Digest.sha256(bytes))])
    }

    /// Appends an audit event (the registry is optional so the agent-side tests can run without one).
    func audit(_ registry: Registry?, action: String, details: [String: String], actor: String, now: Date) throws {
        try registry?.audit(action: action, deviceID: nil, details: details, actor: actor, now: now)
    }

    static func describe(_ signed: [(TUFRoleName, Int64)]) -> String {
        signed.map { "\($0.0.rawValue) v\($0.1)" }.joined(separator: ", ")
    }
}
