import Foundation
import WardenCore
import WardenUpdate

/// The agent's OTA job: which rollout assigned which target, how far the agent got, and the signed status reports
/// still owed to the authority. Persisted in `STATE/ota/job.json` (atomic writes) after every transition, so a
/// kill -9 anywhere resumes or finishes the job, and a committed release is never installed twice.
public struct OTAJob: Codable, Sendable, Equatable {
    /// Where a job stands.
    public enum Phase: String, Codable, Sendable {
        /// Assigned; the target is not verified through TUF yet.
        case assigned
        /// Verified; blocks are being fetched into `ota/download/<sha256>`.
        case downloading
        /// The whole image is downloaded and verified; it is being written to the inactive slot.
        case installing
        /// Installed in the trial slot; the health check decides commit or rollback.
        case trial
        /// Committed (final).
        case succeeded
        /// Refused or rolled back (final), with ``reason``.
        case failed
        /// The assignment was withdrawn before installing (final, not reported).
        case cancelled

        /// Whether nothing more happens in this phase.
        public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
    }

    /// What TUF verified about the target (kept, so a restart mid-download needs no metadata).
    public struct Resolved: Codable, Sendable, Equatable {
        /// Firmware name (`custom.name`).
        public var name: String
        /// Firmware version (`custom.version`).
        public var version: String
        /// `custom.release_counter`.
        public var releaseCounter: Int64
        /// `custom.hardware`.
        public var hardware: [String]
        /// Length, SHA-256, block size and Merkle root.
        public var block: BlockTarget
    }

    /// The assigning rollout.
    public var rollout: Int64
    /// The TUF target name (`name/version`).
    public var target: String
    /// Current phase.
    public var phase: Phase
    /// Why the job failed.
    public var reason: String?
    /// The verified target, once known.
    public var resolved: Resolved?
    /// Whether the `downloading` report was queued (it is sent once).
    public var downloadingReported = false

    /// A fresh job for an assignment.
    public init(rollout: Int64, target: String) {
        self.rollout = rollout
        self.target = target
        phase = .assigned
    }

    enum CodingKeys: String, CodingKey {
        case rollout, target, phase, reason, resolved, downloadingReported = "downloading_reported"
    }
}

/// A status report not yet acknowledged by the broker (PUBACK < 128); signed afresh (with the current time) at
/// every attempt, since the authority refuses reports more than 5 minutes from its clock.
public struct OTAPendingReport: Codable, Sendable, Equatable {
    /// The rollout reported on.
    public var rollout: Int64
    /// `downloading`, `succeeded` or `failed`.
    public var state: String
    /// Why it failed.
    public var reason: String?
}

/// `STATE/ota/job.json`: the current job and the reports still owed.
public struct OTAJobFile: Codable, Sendable, Equatable {
    /// The current (or last) job.
    public var job: OTAJob?
    /// Reports to (re)send until acknowledged, oldest first.
    public var pending: [OTAPendingReport] = []

    /// An empty state.
    public init() {}

    /// Largest job file accepted.
    static let maximumBytes = 256 * 1024

    /// Reads `path`; an absent file is an empty state.
    /// - Throws: ``WardenError`` `.storage` for an unreadable or corrupted file.
    static func load(_ path: String) throws -> OTAJobFile {
        guard SecureFile.mode(of: path) != nil else { return OTAJobFile() }
        let bytes = try SecureFile.read(path, limit: maximumBytes, what: "OTA job")
        do {
            return try JSONDecoder().decode(OTAJobFile.self, from: Data(bytes))
        } catch {
            throw WardenError.storage("'\(path)' is corrupted: \(error)")
        }
    }

    /// Writes the state atomically (stage, fsync, rename), mode 0600.
    func save(_ path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try SecureFile.writeAtomically(Array(try encoder.encode(self)), to: path, mode: 0o600)
    }
}
