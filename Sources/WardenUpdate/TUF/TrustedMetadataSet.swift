import Foundation
import WardenCore

/// The metadata a client trusts, and the only way to change it: each update applies the checks of the TUF 1.0
/// client workflow (§5.3–§5.6) and either replaces the trusted copy or throws, leaving it unchanged.
///
/// Pure and in-memory (no I/O), so both Warden's updater and the edge agent can drive it.
public struct TrustedMetadataSet: Sendable {
    /// The trusted root.
    public private(set) var root: SignedMetadata<RootMetadata>
    /// The trusted timestamp, once loaded.
    public private(set) var timestamp: SignedMetadata<TimestampMetadata>?
    /// The trusted snapshot, once loaded.
    public private(set) var snapshot: SignedMetadata<SnapshotMetadata>?
    /// The trusted targets, once loaded.
    public private(set) var targets: SignedMetadata<TargetsMetadata>?
    /// The time expiry is judged against.
    public let now: Date

    /// Starts from a trusted root (§5.2): it must be signed by its own root threshold. Its expiry is checked only
    /// after the root chain has been walked (§5.3.10), because a newer root may be available.
    public init(trustedRoot bytes: [UInt8], now: Date) throws {
        let root = try SignedMetadata<RootMetadata>.parse(bytes, what: "trusted root metadata")
        try root.verify(by: root.payload, as: .root)
        self.root = root
        self.now = now
    }

    /// Applies root N+1 (§5.3.4–§5.3.9): signed by a threshold of the trusted root's root keys AND of its own,
    /// with version exactly N+1. Must come before timestamp is loaded.
    public mutating func updateRoot(_ bytes: [UInt8]) throws {
        guard timestamp == nil else { throw WardenError.internal("root updated after the timestamp was loaded") }
        let new = try SignedMetadata<RootMetadata>.parse(bytes, what: "root metadata")
        try new.verify(by: root.payload, as: .root)
        guard new.payload.version == root.payload.version + 1 else {
            throw WardenError(
                .verificationFailed,
                "root metadata version \(new.payload.version) does not follow the trusted version \(root.payload.version) (rollback or skip)")
        }
        try new.verify(by: new.payload, as: .root)
        root = new
    }

    /// Refuses to go on with an expired root (§5.3.10, freeze protection).
    public func checkRootExpiry() throws {
        try Self.checkExpiry(root.payload, role: .root, now: now)
    }

    /// Applies new timestamp metadata (§5.4): signed by the root's timestamp threshold, version not lower than the
    /// trusted one, the snapshot version it pins not lower than the trusted one, and not expired.
    /// - Parameter fromTrustedCache: the client's own earlier copy: accepted even if expired, so that it still
    ///   protects against rollback (a fresh timestamp must then replace it before the snapshot can load).
    /// - Returns: false if the new timestamp has the same version as the trusted one (nothing changed).
    @discardableResult
    public mutating func updateTimestamp(_ bytes: [UInt8], fromTrustedCache: Bool = false) throws -> Bool {
        guard snapshot == nil else { throw WardenError.internal("timestamp updated after the snapshot was loaded") }
        try checkRootExpiry()
        let new = try SignedMetadata<TimestampMetadata>.parse(bytes, what: "timestamp metadata")
        try new.verify(by: root.payload, as: .timestamp)
        if let old = timestamp {
            guard new.payload.version >= old.payload.version else {
                throw WardenError(
                    .verificationFailed,
                    "timestamp metadata version \(new.payload.version) is lower than the trusted version \(old.payload.version) (rollback)")
            }
            if new.payload.version == old.payload.version { return false }
            guard new.payload.snapshot.version >= old.payload.snapshot.version else {
                throw WardenError(
                    .verificationFailed,
                    "timestamp pins snapshot version \(new.payload.snapshot.version), lower than the trusted \(old.payload.snapshot.version) (rollback)")
            }
        }
        if !fromTrustedCache { try Self.checkExpiry(new.payload, role: .timestamp, now: now) }
        timestamp = new
        return true
    }

    /// Applies snapshot metadata (§5.5): it must match the length and hashes the timestamp pins (unless it comes
    /// from the client's own trusted cache), be signed by the snapshot threshold, have exactly the pinned version,
    /// list no targets metadata at a lower version than the trusted snapshot, and not be expired.
    /// - Parameter fromTrustedCache: the client's own earlier copy: it is kept as the rollback reference if its
    ///   signature verifies, and the call throws if it is not the pinned version or has expired.
    public mutating func updateSnapshot(_ bytes: [UInt8], fromTrustedCache: Bool = false) throws {
        guard let timestamp else { throw WardenError.internal("snapshot updated before the timestamp") }
        guard targets == nil else { throw WardenError.internal("snapshot updated after the targets were loaded") }
        try Self.checkExpiry(timestamp.payload, role: .timestamp, now: now)
        let pinned = timestamp.payload.snapshot
        if !fromTrustedCache { try pinned.check(bytes, name: "snapshot metadata") }
        let new = try SignedMetadata<SnapshotMetadata>.parse(bytes, what: "snapshot metadata")
        try new.verify(by: root.payload, as: .snapshot)
        if !fromTrustedCache {
            guard new.payload.version == pinned.version else {
                throw WardenError(
                    .verificationFailed,
                    "snapshot metadata version \(new.payload.version) is not the version \(pinned.version) the timestamp pins (mix-and-match)")
            }
        }
        if let old = snapshot {
            for (name, entry) in old.payload.meta {
                guard let now = new.payload.meta[name] else {
                    throw WardenError(.verificationFailed, "snapshot metadata dropped \(name) (rollback)")
                }
                guard now.version >= entry.version else {
                    throw WardenError(
                        .verificationFailed, "snapshot lists \(name) version \(now.version), lower than the trusted \(entry.version) (rollback)")
                }
            }
        }
        if fromTrustedCache {
            // As python-tuf does: the client's own earlier snapshot is kept even when stale, so that the fresh one
            // must pass the rollback checks above against it; the caller then fetches the pinned version.
            snapshot = new
            guard new.payload.version == pinned.version else {
                throw WardenError(.verificationFailed, "the cached snapshot v\(new.payload.version) is not the pinned v\(pinned.version)")
            }
            try Self.checkExpiry(new.payload, role: .snapshot, now: now)
            return
        }
        try Self.checkExpiry(new.payload, role: .snapshot, now: now)
        snapshot = new
    }

    /// Applies targets metadata (§5.6): matching the snapshot's pinned length/hashes (if any), signed by the targets
    /// threshold, exactly the pinned version, and not expired.
    public mutating func updateTargets(_ bytes: [UInt8]) throws {
        guard let snapshot else { throw WardenError.internal("targets updated before the snapshot") }
        try Self.checkExpiry(snapshot.payload, role: .snapshot, now: now)
        guard let pinned = snapshot.payload.meta["targets.json"] else {
            throw WardenError(.verificationFailed, "snapshot metadata does not list targets.json")
        }
        try pinned.check(bytes, name: "targets metadata")
        let new = try SignedMetadata<TargetsMetadata>.parse(bytes, what: "targets metadata")
        try new.verify(by: root.payload, as: .targets)
        guard new.payload.version == pinned.version else {
            throw WardenError(
                .verificationFailed,
                "targets metadata version \(new.payload.version) is not the version \(pinned.version) the snapshot pins (mix-and-match)")
        }
        try Self.checkExpiry(new.payload, role: .targets, now: now)
        targets = new
    }

    static func checkExpiry(_ payload: some TUFPayload, role: TUFRoleName, now: Date) throws {
        guard payload.expires > now else {
            throw WardenError(
                .verificationFailed,
                "\(role.rawValue) metadata v\(payload.version) expired at \(TUFTime.format(payload.expires)) (freeze attack or stale repository)")
        }
    }
}
