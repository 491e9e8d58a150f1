import Foundation
import GRDB
import WardenCore

/// One telemetry record the authority received from a device (`warden device telemetry`).
public struct TelemetryEntry: Sendable, Equatable {
    /// The device.
    public var deviceID: String
    /// The agent's boot epoch when it queued the record.
    public var bootEpoch: UInt32
    /// The record's sequence number (strictly increasing per device across boots).
    public var sequence: UInt64
    /// When the authority stored it.
    public var receivedAt: Date
    /// The record bytes as the device queued them (a pipeline output: one JSON object).
    public var payload: [UInt8]

    /// Creates an entry.
    public init(deviceID: String, bootEpoch: UInt32, sequence: UInt64, receivedAt: Date, payload: [UInt8]) {
        self.deviceID = deviceID
        self.bootEpoch = bootEpoch
        self.sequence = sequence
        self.receivedAt = receivedAt
        self.payload = payload
    }
}

/// Per-device telemetry counters.
public struct TelemetrySummary: Sendable, Equatable {
    /// Records stored since the device's first telemetry (including ones pruned since).
    public var stored: Int
    /// Records received again (redeliveries) and dropped.
    public var duplicates: Int
    /// Batches refused as malformed.
    public var malformedBatches: Int
    /// Records kept now (bounded by ``Registry/telemetryRetention`` and ``Registry/telemetryRowsPerDevice``).
    public var kept: Int
    /// When a record of the device was last stored; nil if none was.
    public var lastReceived: Date?

    /// Creates a summary.
    public init(stored: Int, duplicates: Int, malformedBatches: Int, kept: Int, lastReceived: Date?) {
        self.stored = stored
        self.duplicates = duplicates
        self.malformedBatches = malformedBatches
        self.kept = kept
        self.lastReceived = lastReceived
    }
}

/// What one ``Registry/recordTelemetry(_:records:at:)`` did.
public struct TelemetryIngestOutcome: Sendable, Equatable {
    /// Records stored.
    public var stored: Int
    /// Records already stored (same device, boot epoch and sequence) and dropped.
    public var duplicates: Int
    /// Old records deleted to keep the table bounded.
    public var pruned: Int

    /// Creates an outcome.
    public init(stored: Int, duplicates: Int, pruned: Int) {
        self.stored = stored
        self.duplicates = duplicates
        self.pruned = pruned
    }
}

extension Registry {
    /// How long telemetry is kept.
    public static let telemetryRetention: TimeInterval = 7 * 86_400
    /// Most telemetry records kept per device (the oldest go first).
    public static let telemetryRowsPerDevice = 100_000

    /// Stores one batch of `deviceID`'s telemetry in ONE transaction: a record whose (device, boot epoch, sequence) is
    /// already stored is a redelivery and is dropped (counted in ``TelemetrySummary/duplicates``); then records older
    /// than ``telemetryRetention`` and beyond ``telemetryRowsPerDevice`` are deleted. Nothing is audited (volume).
    /// - Returns: nil, storing nothing, if `deviceID` is not an active registry device.
    /// - Throws: ``WardenError/badInput(_:)`` for a sequence beyond 2⁶³ − 1; ``WardenError/storage(_:)``.
    @discardableResult
    public func recordTelemetry(
        _ deviceID: String, records: [(bootEpoch: UInt32, sequence: UInt64, payload: [UInt8])], at now: Date
    ) throws -> TelemetryIngestOutcome? {
        guard records.allSatisfy({ $0.sequence <= UInt64(Int64.max) }) else {
            throw WardenError.badInput("telemetry sequence of \(deviceID) exceeds \(Int64.max)")
        }
        return try write { db in
            guard try String.fetchOne(db, sql: "SELECT status FROM devices WHERE id = ?", arguments: [deviceID]) == "active" else {
                return nil
            }
            let at = now.timeIntervalSince1970
            var stored = 0
            let insert = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO device_telemetry (device_id, boot, seq, received_at, payload) VALUES (?, ?, ?, ?, ?)")
            for record in records {
                try insert.execute(arguments: [deviceID, Int64(record.bootEpoch), Int64(record.sequence), at, Data(record.payload)])
                stored += db.changesCount
            }
            try db.execute(
                sql: "DELETE FROM device_telemetry WHERE device_id = ? AND received_at < ?",
                arguments: [deviceID, at - Self.telemetryRetention])
            var pruned = db.changesCount
            let last: Double? = stored > 0 ? at : nil
            try db.execute(
                sql: """
                    INSERT INTO device_telemetry_stats (device_id, stored, duplicates, malformed_batches, kept, last_received)
                    VALUES (?, ?, ?, 0, ?, ?)
                    ON CONFLICT(device_id) DO UPDATE SET stored = stored + excluded.stored,
                        duplicates = duplicates + excluded.duplicates, kept = kept + excluded.kept - ?,
                        last_received = CASE WHEN excluded.stored > 0 THEN excluded.last_received ELSE last_received END
                    """,
                arguments: [deviceID, stored, records.count - stored, stored, last, pruned])
            let kept = try Int.fetchOne(db, sql: "SELECT kept FROM device_telemetry_stats WHERE device_id = ?", arguments: [deviceID]) ?? 0
            if kept > Self.telemetryRowsPerDevice {
                try db.execute(
                    sql: """
                        DELETE FROM device_telemetry WHERE device_id = ? AND (boot, seq) IN
                            (SELECT boot, seq FROM device_telemetry WHERE device_id = ? ORDER BY boot, seq LIMIT ?)
                        """,
                    arguments: [deviceID, deviceID, kept - Self.telemetryRowsPerDevice])
                let over = db.changesCount
                pruned += over
                try db.execute(sql: "UPDATE device_telemetry_stats SET kept = kept - ? WHERE device_id = ?", arguments: [over, deviceID])
            }
            return TelemetryIngestOutcome(stored: stored, duplicates: records.count - stored, pruned: pruned)
        }
    }

    /// Counts a malformed telemetry batch from `deviceID` (nothing of it is stored). Unknown devices are not counted.
    /// - Throws: ``WardenError/storage(_:)``.
    public func recordMalformedTelemetry(_ deviceID: String) throws {
        try write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM devices WHERE id = ?", arguments: [deviceID]) == true else { return }
            try db.execute(
                sql: """
                    INSERT INTO device_telemetry_stats (device_id, stored, duplicates, malformed_batches, kept) VALUES (?, 0, 0, 1, 0)
                    ON CONFLICT(device_id) DO UPDATE SET malformed_batches = malformed_batches + 1
                    """,
                arguments: [deviceID])
        }
    }

    /// The telemetry counters of `deviceID`, or nil if it never sent any.
    /// - Throws: ``WardenError/storage(_:)``.
    public func telemetrySummary(of deviceID: String) throws -> TelemetrySummary? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM device_telemetry_stats WHERE device_id = ?", arguments: [deviceID]).map { row in
                TelemetrySummary(
                    stored: row["stored"], duplicates: row["duplicates"], malformedBatches: row["malformed_batches"], kept: row["kept"],
                    lastReceived: (row["last_received"] as Double?).map { Date(timeIntervalSince1970: $0) })
            }
        }
    }

    /// The newest `limit` telemetry records of `deviceID` received at or after `since` (all kept ones if nil), returned
    /// oldest first (by boot epoch, then sequence).
    /// - Throws: ``WardenError/storage(_:)``.
    public func telemetry(of deviceID: String, since: Date? = nil, limit: Int) throws -> [TelemetryEntry] {
        try read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT boot, seq, received_at, payload FROM device_telemetry
                    WHERE device_id = ? AND received_at >= ? ORDER BY boot DESC, seq DESC LIMIT ?
                    """,
                arguments: [deviceID, since?.timeIntervalSince1970 ?? -Double.greatestFiniteMagnitude, max(0, limit)])
            return rows.reversed().map { row in
                TelemetryEntry(
                    deviceID: deviceID, bootEpoch: UInt32(row["boot"] as Int64), sequence: UInt64(row["seq"] as Int64),
                    receivedAt: Date(timeIntervalSince1970: row["received_at"]), payload: Array(row["payload"] as Data))
            }
        }
    }
}
