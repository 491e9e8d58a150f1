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

extension FirmwareRepository {
    /// The key algorithms of each role: root mixes Ed25519 and ECDSA P-256 (2 of 3), online roles one key each.
    public static let roleKeyAlgorithms: [TUFRoleName: [SigningAlgorithm]] = [
        .root: [.ed25519, .ecdsaP256, .ed25519],
        .targets: [.ed25519],
        .snapshot: [.ecdsaP256],
        .timestamp: [.ed25519],
    ]

    /// The signature threshold of each role.
    public static let roleThresholds: [TUFRoleName: Int] = [.root: 2, .targets: 1, .snapshot: 1, .timestamp: 1]

    /// `warden firmware keys init`: creates every role's keys (encrypted, 0600) and publishes version 1 of root,
    /// targets (empty), snapshot and timestamp. Refuses if a repository exists.
    /// - Returns: the new root.
    @discardableResult
    public func initialize(passphrase: [UInt8], registry: Registry?, actor: String, now: Date) throws -> RootMetadata {
        try locked {
            guard !isInitialized, SecureFile.mode(of: keysDirectory) == nil else {
                throw WardenError.alreadyExists("a firmware repository already exists in '\(tufDirectory)'; refusing to overwrite it")
            }
            try SecureFile.ensureDirectory(keysDirectory)
            try SecureFile.ensureDirectory(metadataDirectory, mode: 0o755)
            var keys: [String: TUFKey] = [:]
            var roles: [TUFRoleName: TUFRole] = [:]
            for role in TUFRoleName.allCases {
                var ids: [String] = []
                for algorithm in Self.roleKeyAlgorithms[role]! {
                    let key = SigningKey.generate(algorithm)
                    let id = try storeKey(key, passphrase: passphrase)
                    keys[id] = TUFKey(key.publicKey)
                    ids.append(id)
                }
                roles[role] = TUFRole(keyIDs: ids, threshold: Self.roleThresholds[role]!)
            }
            let root = RootMetadata(version: 1, expires: now.addingTimeInterval(expiries.root), keys: keys, roles: roles)
            let signedRoot = try sign(root, role: .root, root: root, passphrase: passphrase)
            let targets = try sign(
                TargetsMetadata(version: 1, expires: now.addingTimeInterval(expiries.targets), targets: [:]), role: .targets, root: root,
                passphrase: passphrase)
            let snapshot = try sign(
                SnapshotMetadata(
                    version: 1, expires: now.addingTimeInterval(expiries.snapshot),
                    meta: ["targets.json": Self.metaInfo(version: 1, bytes: targets.fileBytes)]),
                role: .snapshot, root: root, passphrase: passphrase)
            let timestamp = try sign(
                TimestampMetadata(
                    version: 1, expires: now.addingTimeInterval(expiries.timestamp),
                    snapshot: Self.metaInfo(version: 1, bytes: snapshot.fileBytes)),
                role: .timestamp, root: root, passphrase: passphrase)
            try publish(targets, as: "1.targets.json")
            try publish(snapshot, as: "1.snapshot.json")
            try publish(timestamp, as: "timestamp.json")
            try publish(signedRoot, as: "root.json")
            try publish(signedRoot, as: "1.root.json")  // the commit point: isInitialized looks at this file
            var details: [String: String] = ["root_version": "1", "signed": "root v1, targets v1, snapshot v1, timestamp v1"]
            for role in TUFRoleName.allCases { details["\(role.rawValue)_keyids"] = roles[role]!.keyIDs.joined(separator: ",") }
            try audit(registry, action: "firmware.keys.init", details: details, actor: actor, now: now)
            return root
        }
    }

    /// `warden firmware keys rotate ROLE`: replaces every key of `role` with fresh ones (same algorithms and
    /// threshold) and publishes root N+1, signed by a threshold of the old root keys AND of the new root's root
    /// keys (TUF 1.0 §5.3.4), so clients holding root N accept it. For an online role the role's metadata (and
    /// the snapshot and timestamp above it) is re-signed with the new key.
    /// - Returns: the new root.
    @discardableResult
    public func rotate(_ role: TUFRoleName, passphrase: [UInt8], registry: Registry?, actor: String, now: Date) throws -> RootMetadata {
        try locked {
            let old = try currentRoot().payload
            let oldRootKeys = try loadKeys(role: .root, root: old, passphrase: passphrase)
            // Refuse early if the online keys needed afterwards are not available.
            if role != .root {
                for dependent in [TUFRoleName.targets, .snapshot, .timestamp] where dependent != role {
                    _ = try loadKeys(role: dependent, root: old, passphrase: passphrase)
                }
            }
            let algorithms = old.role(role).keyIDs.compactMap { old.keys[$0]?.verifyingKey?.algorithm }
            var newKeys: [SigningKey] = []
            for algorithm in algorithms.isEmpty ? Self.roleKeyAlgorithms[role]! : algorithms {
                newKeys.append(SigningKey.generate(algorithm))
            }
            var root = old
            root.version += 1
            root.expires = now.addingTimeInterval(expiries.root)
            let newIDs = newKeys.map { TUFKey($0.publicKey).keyID }
            root.roles[role] = TUFRole(keyIDs: newIDs, threshold: min(old.role(role).threshold, newIDs.count))
            for key in newKeys { root.keys[TUFKey(key.publicKey).keyID] = TUFKey(key.publicKey) }
            let used = Set(root.roles.values.flatMap(\.keyIDs))
            root.keys = root.keys.filter { used.contains($0.key) }

            var signedRoot = SignedMetadata(root)
            try signedRoot.sign(with: oldRootKeys)
            if role == .root { try signedRoot.sign(with: newKeys) }
            // Both thresholds must hold before anything is published.
            try signedRoot.verify(by: old, as: .root)
            try signedRoot.verify(by: root, as: .root)

            var written: [String] = []
            do {
                for key in newKeys { written.append(try storeKey(key, passphrase: passphrase)) }
            } catch {
                for id in written { unlink(keyPath(id)) }
                throw error
            }
            // The new root version is the commit point for clients walking the chain.
            try publish(signedRoot, as: "\(root.version).root.json")
            try publish(signedRoot, as: "root.json")
            var signed: [(TUFRoleName, Int64)] = [(.root, root.version)]
            if role != .root {
                let downstream: Set<TUFRoleName> =
                    switch role {
                    case .targets: [.targets, .snapshot, .timestamp]
                    case .snapshot: [.snapshot, .timestamp]
                    default: [.timestamp]
                    }
                signed += try republish(downstream, root: root, passphrase: passphrase, now: now)
            }
            try audit(
                registry, action: "firmware.keys.rotate",
                details: [
                    "role": role.rawValue, "old_keyids": old.role(role).keyIDs.joined(separator: ","), "new_keyids": newIDs.joined(separator: ","),
                    "signed": Self.describe(signed),
                ], actor: actor, now: now)
            return root
        }
    }
}
