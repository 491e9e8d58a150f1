import Foundation
import WardenCore

/// One of the two firmware slots.
public enum Slot: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Slot `a` (`slots/a/`).
    case a
    /// Slot `b` (`slots/b/`).
    case b

    /// The other slot.
    public var other: Slot { self == .a ? .b : .a }

    /// `a` or `b`.
    public var description: String { rawValue }
}

/// `slots/boot.json`: which slot boots, and which one holds an install waiting for its health check.
///
/// `{"active": "a"|"b"|null, "trial": "a"|"b"|null}`; the two are never the same slot. Written atomically (temporary
/// file, fsync, rename, fsync of the directory), so a reader sees the old state or the new one.
public struct BootState: Codable, Sendable, Equatable {
    /// The slot that boots; nil before the first committed install.
    public var active: Slot?
    /// The slot holding an install that is neither committed nor rolled back.
    public var trial: Slot?

    /// Creates a boot state.
    public init(active: Slot?, trial: Slot?) {
        self.active = active
        self.trial = trial
    }

    /// Encodes both keys, `null` included.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(active, forKey: .active)
        try container.encode(trial, forKey: .trial)
    }

    enum CodingKeys: String, CodingKey { case active, trial }
}

/// The lowest release of one firmware name that may still be installed: the last committed one.
/// Stored in `slots/floor.json` as `{"<name>": {"version": "1.4.2", "release_counter": 7}, …}`.
public struct SlotFloor: Codable, Sendable, Equatable {
    /// The committed version (see ``FirmwareVersion`` for the order).
    public var version: String
    /// The committed release counter.
    public var releaseCounter: Int64

    /// Creates a floor.
    public init(version: String, releaseCounter: Int64) {
        self.version = version
        self.releaseCounter = releaseCounter
    }

    enum CodingKeys: String, CodingKey { case version, releaseCounter = "release_counter" }
}

/// `slots/rollback.json`: the last rolled-back install, kept for reports.
public struct SlotRollback: Codable, Sendable, Equatable {
    /// The slot that held the install.
    public var slot: Slot
    /// Its manifest, if it was readable.
    public var manifest: SlotManifest?
    /// Why it was rolled back (at most 4 KiB), as given to ``SlotStore/rollback(reason:)``.
    public var reason: String
    /// When (whole seconds).
    public var at: Date

    /// Creates a record.
    public init(slot: Slot, manifest: SlotManifest?, reason: String, at: Date) {
        self.slot = slot
        self.manifest = manifest
        self.reason = reason
        self.at = at
    }

    enum CodingKeys: String, CodingKey { case slot, manifest, reason, at }

    /// Decodes `at` from unix seconds.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        slot = try container.decode(Slot.self, forKey: .slot)
        manifest = try container.decodeIfPresent(SlotManifest.self, forKey: .manifest)
        reason = try container.decode(String.self, forKey: .reason)
        at = Date(timeIntervalSince1970: TimeInterval(try container.decode(Int64.self, forKey: .at)))
    }

    /// Encodes `at` as unix seconds.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(slot, forKey: .slot)
        try container.encodeIfPresent(manifest, forKey: .manifest)
        try container.encode(reason, forKey: .reason)
        try container.encode(Int64(at.timeIntervalSince1970.rounded(.down)), forKey: .at)
    }
}

/// A snapshot of the slot store (``SlotStore/status()``). Manifests are read, images are not hashed: use
/// ``SlotStore/verify(_:)`` or ``SlotStore/recover()`` for that.
public struct SlotStatus: Sendable, Equatable, Encodable {
    /// The slot that boots; nil before the first committed install.
    public var active: Slot?
    /// The slot holding an uncommitted install, if any.
    public var trial: Slot?
    /// The manifest of slot `a`; nil if the slot is empty or its manifest unreadable.
    public var a: SlotManifest?
    /// The manifest of slot `b`; nil if the slot is empty or its manifest unreadable.
    public var b: SlotManifest?
    /// The install floors, by firmware name.
    public var floors: [String: SlotFloor]
    /// The last rollback, if any.
    public var lastRollback: SlotRollback?

    /// Creates a snapshot.
    public init(active: Slot?, trial: Slot?, a: SlotManifest?, b: SlotManifest?, floors: [String: SlotFloor], lastRollback: SlotRollback?) {
        self.active = active
        self.trial = trial
        self.a = a
        self.b = b
        self.floors = floors
        self.lastRollback = lastRollback
    }

    /// The manifest of `slot`.
    public func manifest(of slot: Slot) -> SlotManifest? { slot == .a ? a : b }
    /// The manifest of the active slot.
    public var activeManifest: SlotManifest? { active.flatMap(manifest(of:)) }
    /// The manifest of the trial slot.
    public var trialManifest: SlotManifest? { trial.flatMap(manifest(of:)) }

    enum CodingKeys: String, CodingKey { case active, trial, slots, floors, lastRollback = "last_rollback" }
    enum SlotKeys: String, CodingKey { case a, b }

    /// `{"active", "trial", "slots": {"a", "b"}, "floors", "last_rollback"}`, nulls included.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(active, forKey: .active)
        try container.encode(trial, forKey: .trial)
        var slots = container.nestedContainer(keyedBy: SlotKeys.self, forKey: .slots)
        try slots.encode(a, forKey: .a)
        try slots.encode(b, forKey: .b)
        try container.encode(floors, forKey: .floors)
        try container.encode(lastRollback, forKey: .lastRollback)
    }
}

/// What ``SlotStore/recover()`` found and did at agent start. In every case leftover temporary files were removed.
public enum RecoveryOutcome: Sendable, Equatable {
    /// Nothing to do: the active slot (nil if nothing was ever committed) verifies and no install is pending.
    case unchanged(active: Slot?)
    /// An install is waiting in `slot` (the agent stopped during the install or before its health check) and its
    /// image verifies: run the health check, then ``SlotStore/commit()`` or ``SlotStore/rollback(reason:)``.
    case trialPending(Slot)
    /// The pending install in `slot` did not verify (a crash in the middle of writing it, or a damaged image); it was
    /// rolled back. The active slot verifies.
    case trialDiscarded(Slot, reason: String)
    /// The active slot `from` did not verify (`reason`), the other slot `to` did, and `to` is now active. A pending
    /// install in `to` is thereby committed without a health check, since it was the only bootable image.
    case switched(from: Slot, to: Slot, reason: String)
    /// The active slot does not verify and neither does the other one; boot.json is left as it was. The device needs
    /// a new install.
    case unbootable(reason: String)
}
