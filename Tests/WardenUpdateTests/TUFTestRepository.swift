import Foundation
import Synchronization
import WardenCore
import WardenPKI
@testable import WardenUpdate

/// An in-memory TUF repository built with Warden's own signing API, and a fetcher serving it, for driving
/// ``TUFUpdater`` through good and hostile states.
final class TUFTestRepository: Sendable {
    let files = Mutex<[String: [UInt8]]>([:])
    let targetFiles = Mutex<[String: [UInt8]]>([:])
    let now = Date()

    struct State {
        var rootKeys = [SigningKey.generate(.ed25519), SigningKey.generate(.ecdsaP256), SigningKey.generate(.ed25519)]
        var targetsKey = SigningKey.generate(.ed25519)
        var snapshotKey = SigningKey.generate(.ecdsaP256)
        var timestampKey = SigningKey.generate(.ed25519)
        var root: RootMetadata!
        var targetsVersion: Int64 = 0
        var snapshotVersion: Int64 = 0
        var timestampVersion: Int64 = 0
        var targets: [String: TargetFileInfo] = [:]
    }

    let state: Mutex<State>

    init() throws {
        state = Mutex(State())
        state.withLock { state in
            state.root = Self.makeRoot(state, version: 1, expires: now.addingTimeInterval(365 * 86_400))
        }
        try publishRoot(signers: Array(state.withLock { $0.rootKeys.prefix(2) }))
        try publish()
    }

    static func makeRoot(_ state: State, version: Int64, expires: Date) -> RootMetadata {
        var keys: [String: TUFKey] = [:]
        func ids(_ list: [SigningKey]) -> [String] {
            list.map {
                let key = TUFKey($0.publicKey)
                keys[key.keyID] = key
                return key.keyID
            }
        }
        let roles: [TUFRoleName: TUFRole] = [
            .root: TUFRole(keyIDs: ids(state.rootKeys), threshold: 2),
            .targets: TUFRole(keyIDs: ids([state.targetsKey]), threshold: 1),
            .snapshot: TUFRole(keyIDs: ids([state.snapshotKey]), threshold: 1),
            .timestamp: TUFRole(keyIDs: ids([state.timestampKey]), threshold: 1),
        ]
        return RootMetadata(version: version, expires: expires, keys: keys, roles: roles)
    }

    /// Signs the current root with `signers` and stores it as N.root.json.
    func publishRoot(signers: [SigningKey]) throws {
        let root = state.withLock { $0.root! }
        var metadata = SignedMetadata(root)
        try metadata.sign(with: signers)
        files.withLock { $0["\(root.version).root.json"] = metadata.fileBytes }
    }

    var trustedRoot: [UInt8] { files.withLock { $0["1.root.json"]! } }

    /// Adds a target file.
    func addTarget(_ name: String, _ bytes: [UInt8]) {
        let info = TargetFileInfo(length: Int64(bytes.count), hashes: TUFHash.hashes(of: bytes), custom: .object(["version": .string("1")]))
        state.withLock { $0.targets[name] = info }
        targetFiles.withLock { $0[TUFPath.consistentTargetPath(name, hash: info.hashes["sha256"]!)] = bytes }
    }

    /// Publishes new targets, snapshot and timestamp versions.
    @discardableResult
    func publish(
        expires: TimeInterval = 86_400, timestampSigners: [SigningKey]? = nil, targetsVersion: Int64? = nil
    ) throws -> (targets: [UInt8], snapshot: [UInt8], timestamp: [UInt8]) {
        try state.withLock { state in
            state.targetsVersion = targetsVersion ?? state.targetsVersion + 1
            state.snapshotVersion += 1
            state.timestampVersion += 1
            var targets = SignedMetadata(TargetsMetadata(version: state.targetsVersion, expires: now.addingTimeInterval(expires), targets: state.targets))
            try targets.sign(with: [state.targetsKey])
            var snapshot = SignedMetadata(
                SnapshotMetadata(
                    version: state.snapshotVersion, expires: now.addingTimeInterval(expires),
                    meta: ["targets.json": MetaFileInfo(version: state.targetsVersion)]))
            try snapshot.sign(with: [state.snapshotKey])
            let snapshotBytes = snapshot.fileBytes
            var timestamp = SignedMetadata(
                TimestampMetadata(
                    version: state.timestampVersion, expires: now.addingTimeInterval(expires),
                    snapshot: MetaFileInfo(version: state.snapshotVersion, length: Int64(snapshotBytes.count), hashes: TUFHash.hashes(of: snapshotBytes))))
            try timestamp.sign(with: timestampSigners ?? [state.timestampKey])
            let result = (targets.fileBytes, snapshotBytes, timestamp.fileBytes)
            files.withLock {
                $0["\(state.targetsVersion).targets.json"] = result.0
                $0["\(state.snapshotVersion).snapshot.json"] = result.1
                $0["timestamp.json"] = result.2
            }
            return result
        }
    }

    var fetcher: Fetcher { Fetcher(repository: self) }

    struct Fetcher: TUFFetcher {
        let repository: TUFTestRepository

        func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
            let bytes = kind == .metadata ? repository.files.withLock { $0[path] } : repository.targetFiles.withLock { $0[path] }
            if let bytes, bytes.count > maxLength { throw WardenError.badInput("\(path) exceeds \(maxLength) bytes") }
            return bytes
        }
    }
}

/// An updater and the directory it keeps its trusted metadata in (removed with the client).
final class TestClient {
    var updater: TUFUpdater
    let directory: TemporaryPath

    init(updater: TUFUpdater, directory: TemporaryPath) {
        self.updater = updater
        self.directory = directory
    }
}

/// A client provisioned with the repository's root 1 (or `root`).
func makeClient(_ repository: TUFTestRepository, root: [UInt8]? = nil) throws -> TestClient {
    let directory = TemporaryPath()
    try TUFUpdater.provision(trustedRoot: root ?? repository.trustedRoot, metadataDirectory: directory.path)
    return TestClient(updater: TUFUpdater(metadataDirectory: directory.path, fetcher: repository.fetcher), directory: directory)
}

/// A temporary directory removed on deinit.
final class TemporaryPath: Sendable {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("warden-tuf-\(UUID().uuidString)").path
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
