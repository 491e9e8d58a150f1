import Foundation
import GRDB
import WardenCore

/// The lifecycle of a rollout.
public enum RolloutState: String, Codable, Sendable, CaseIterable {
    /// Waves are released as earlier ones succeed.
    case running
    /// No new wave is released; devices already assigned keep their assignment.
    case paused
    /// Stopped for good (by an operator or above the failure rate); unreleased and pending devices are cancelled.
    case aborted
    /// Every wave was released and every device reported a final state.
    case completed
}

/// Where one device stands in a rollout.
public enum RolloutDeviceState: String, Codable, Sendable, CaseIterable {
    /// In a wave not released yet: not assigned.
    case scheduled
    /// Assigned (its wave was released); no report yet.
    case pending
    /// The device reported that it is downloading.
    case downloading
    /// The device reported a successful installation.
    case succeeded
    /// The device reported a failure (with a reason).
    case failed
    /// Withdrawn by an abort before the device finished.
    case cancelled

    /// Whether the device has a final outcome.
    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// One rollout.
public struct RolloutRecord: Codable, Sendable, Equatable {
    /// Identifier.
    public var id: Int64
    /// Target name (`firmware list`).
    public var targetName: String
    /// Target version.
    public var targetVersion: String
    /// SHA-256 (hex) of the target image.
    public var targetSHA256: String
    /// The device group rolled out to.
    public var group: String
    /// Cumulative percentages of the group per wave, increasing, ending at 100.
    public var waves: [Int]
    /// Abort when more than this percentage of the devices with a final report failed.
    public var abortFailureRate: Double
    /// Lifecycle state.
    public var state: RolloutState
    /// The last released wave (0-based).
    public var currentWave: Int
    /// Why the rollout was aborted or paused.
    public var reason: String?
    /// Created.
    public var createdAt: Date
    /// Last change.
    public var updatedAt: Date
}

/// One device's assignment in a rollout.
public struct RolloutDeviceRecord: Codable, Sendable, Equatable {
    /// The rollout.
    public var rolloutID: Int64
    /// The device.
    public var deviceID: String
    /// Its wave (0-based).
    public var wave: Int
    /// Its state.
    public var state: RolloutDeviceState
    /// The reason of a failure, as reported.
    public var reason: String?
    /// Last change.
    public var updatedAt: Date
}

/// An audit event produced by a rollout change.
public struct RolloutAuditEvent: Sendable {
    /// e.g. `rollout.create`, `rollout.wave`, `rollout.abort`, `rollout.report`.
    public var action: String
    /// The device concerned, if any.
    public var deviceID: String?
    /// Details.
    public var details: [String: String]

    /// Creates an event.
    public init(action: String, deviceID: String? = nil, details: [String: String]) {
        self.action = action
        self.deviceID = deviceID
        self.details = details
    }
}

extension Registry {
    /// Creates a rollout and its per-device assignments in one transaction, with its audit event.
    /// Devices of wave 0 start `pending` (assigned), the others `scheduled`.
    /// - Returns: the new rollout.
    public func createRollout(
        targetName: String, targetVersion: String, targetSHA256: String, group: String, waves: [Int], abortFailureRate: Double,
        devices: [(id: String, wave: Int)], actor: String, now: Date
    ) throws -> RolloutRecord {
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO rollouts (target_name, target_version, target_sha256, group_name, waves, abort_failure_rate,
                                          state, current_wave, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, 'running', 0, ?, ?)
                    """,
                arguments: [targetName, targetVersion, targetSHA256, group, waves.map(String.init).joined(separator: ","),
                            abortFailureRate, now.timeIntervalSince1970, now.timeIntervalSince1970])
            let id = db.lastInsertedRowID
            for device in devices {
                try db.execute(
                    sql: "INSERT INTO rollout_devices (rollout_id, device_id, wave, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [id, device.id, device.wave, device.wave == 0 ? "pending" : "scheduled", now.timeIntervalSince1970])
            }
            try Self.appendAudit(
                db: db, actor: actor, action: "rollout.create", deviceID: nil,
                details: ["rollout": String(id), "target": "\(targetName)@\(targetVersion)", "sha256": targetSHA256, "group": group,
                          "waves": waves.map(String.init).joined(separator: ","), "abort_failure_rate": String(abortFailureRate),
                          "devices": String(devices.count)],
                now: now)
            return try Self.fetchRollout(db, id: id)!
        }
    }

    /// The rollout `id`, or nil.
    public func rollout(_ id: Int64) throws -> RolloutRecord? {
        try read { db in try Self.fetchRollout(db, id: id) }
    }

    /// Every rollout, newest first.
    public func rollouts() throws -> [RolloutRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollouts ORDER BY id DESC").map(Self.rollout(from:))
        }
    }

    /// The device assignments of rollout `id`, by device id.
    public func rolloutDevices(_ id: Int64) throws -> [RolloutDeviceRecord] {
        try read { db in try Self.fetchRolloutDevices(db, id: id) }
    }

    /// The device's current assignment: its row in a running or paused rollout where it is pending or downloading
    /// (the newest such rollout), or nil.
    public func currentAssignment(device: String) throws -> (rollout: RolloutRecord, device: RolloutDeviceRecord)? {
        try read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT d.rollout_id FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id
                    WHERE d.device_id = ? AND d.state IN ('pending', 'downloading') AND r.state IN ('running', 'paused')
                    ORDER BY d.rollout_id DESC LIMIT 1
                    """,
                arguments: [device])
            else { return nil }
            let id: Int64 = row[0]
            guard let rollout = try Self.fetchRollout(db, id: id),
                  let assignment = try Self.fetchRolloutDevices(db, id: id).first(where: { $0.deviceID == device })
            else { return nil }
            return (rollout, assignment)
        }
    }

    /// Changes a rollout in one transaction: `body` edits the rollout and its device rows and returns the audit
    /// events to append; changed rows are written back.
    /// - Throws: ``WardenError`` `.notFound` for an unknown rollout, or what `body` throws (nothing is written then).
    @discardableResult
    public func modifyRollout(
        _ id: Int64, actor: String, now: Date,
        _ body: (inout RolloutRecord, inout [RolloutDeviceRecord]) throws -> [RolloutAuditEvent]
    ) throws -> RolloutRecord {
        try write { db in
            guard let original = try Self.fetchRollout(db, id: id) else { throw WardenError.notFound("rollout \(id) does not exist") }
            let originalDevices = try Self.fetchRolloutDevices(db, id: id)
            var rollout = original
            var devices = originalDevices
            let events = try body(&rollout, &devices)
            if rollout != original {
                rollout.updatedAt = now
                try db.execute(
                    sql: "UPDATE rollouts SET state = ?, current_wave = ?, reason = ?, updated_at = ? WHERE id = ?",
                    arguments: [rollout.state.rawValue, rollout.currentWave, rollout.reason, now.timeIntervalSince1970, id])
            }
            for (before, after) in zip(originalDevices, devices) where before != after {
                try db.execute(
                    sql: "UPDATE rollout_devices SET state = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?",
                    arguments: [after.state.rawValue, after.reason, now.timeIntervalSince1970, id, after.deviceID])
            }
            for event in events {
                try Self.appendAudit(db: db, actor: actor, action: event.action, deviceID: event.deviceID,
                                     details: event.details.merging(["rollout": String(id)]) { a, _ in a }, now: now)
            }
            return try Self.fetchRollout(db, id: id)!
        }
    }

    static func fetchRollout(_ db: Database, id: Int64) throws -> RolloutRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM rollouts WHERE id = ?", arguments: [id]).map(rollout(from:))
    }

    static func fetchRolloutDevices(_ db: Database, id: Int64) throws -> [RolloutDeviceRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM rollout_devices WHERE rollout_id = ? ORDER BY device_id", arguments: [id]).map { row in
            RolloutDeviceRecord(
                rolloutID: row["rollout_id"], deviceID: row["device_id"], wave: row["wave"],
                state: RolloutDeviceState(rawValue: row["state"]) ?? .pending, reason: row["reason"],
                updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
        }
    }

    static func rollout(from row: Row) -> RolloutRecord {
        let waves: String = row["waves"]
        return RolloutRecord(
            id: row["id"], targetName: row["target_name"], targetVersion: row["target_version"], targetSHA256: row["target_sha256"],
            group: row["group_name"], waves: waves.split(separator: ",").compactMap { Int($0) },
            abortFailureRate: row["abort_failure_rate"], state: RolloutState(rawValue: row["state"]) ?? .paused,
            currentWave: row["current_wave"], reason: row["reason"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]), updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
    }
}
