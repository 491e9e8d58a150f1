import Foundation
import GRDB
import WardenCore

/// Whether a device holds an MQTT session, as its birth and Last Will messages tell.
public struct DevicePresence: Codable, Sendable, Equatable {
    /// The device.
    public var deviceID: String
    /// Whether its latest session is up.
    public var connected: Bool
    /// The session id the device chose for its latest session.
    public var session: String
    /// When a presence message of the device was last received.
    public var lastSeen: Date
    /// When `connected` last changed.
    public var changedAt: Date
}

extension Registry {
    /// What ``recordPresence(_:connected:session:at:)`` did.
    public enum PresenceOutcome: Sendable, Equatable {
        /// The device's state or last-seen time changed.
        case recorded
        /// Ignored: a Last Will of an older session than the one in force (a reconnect raced its predecessor's will).
        case staleSession
        /// Ignored: the device is not an active registry device.
        case notActive
    }

    /// Records a presence message of `deviceID`: `connected` for a birth or heartbeat of `session`, not connected for
    /// its Last Will. Idempotent, so duplicates (QoS 1 redelivery, retained replays) are harmless. An offline message
    /// for a session other than the current one is ignored; revoked and unknown devices are ignored.
    /// - Throws: ``WardenError/storage(_:)``.
    @discardableResult
    public func recordPresence(_ deviceID: String, connected: Bool, session: String, at now: Date) throws -> PresenceOutcome {
        try write { db in
            guard try String.fetchOne(db, sql: "SELECT status FROM devices WHERE id = ?", arguments: [deviceID]) == "active" else {
                return .notActive
            }
            let current = try Row.fetchOne(
                db, sql: "SELECT connected, session FROM device_presence WHERE device_id = ?", arguments: [deviceID])
            if !connected, let current, (current["session"] as String) != session { return .staleSession }
            try db.execute(
                sql: """
                    INSERT INTO device_presence (device_id, connected, session, last_seen, changed_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(device_id) DO UPDATE SET connected = excluded.connected, session = excluded.session,
                        last_seen = excluded.last_seen,
                        changed_at = CASE WHEN device_presence.connected = excluded.connected THEN device_presence.changed_at ELSE excluded.changed_at END
                    """,
                arguments: [deviceID, connected ? 1 : 0, session, now.timeIntervalSince1970, now.timeIntervalSince1970])
            return .recorded
        }
    }

    /// Marks every device disconnected (keeping last-seen times): what a fresh broker means, since no session
    /// survives a broker restart. The retained birth messages of devices still online set them back at once.
    /// - Throws: ``WardenError/storage(_:)``.
    public func markAllDisconnected(at now: Date) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE device_presence SET connected = 0, changed_at = ? WHERE connected = 1",
                arguments: [now.timeIntervalSince1970])
        }
    }

    /// The presence of `deviceID`, or nil if it never announced itself. A revoked device is never reported connected:
    /// revocation kicks its session and the broker refuses its certificate.
    /// - Throws: ``WardenError/storage(_:)``.
    public func presence(of deviceID: String) throws -> DevicePresence? {
        try read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT p.device_id, p.connected, p.session, p.last_seen, p.changed_at, d.status
                    FROM device_presence p JOIN devices d ON d.id = p.device_id WHERE p.device_id = ?
                    """,
                arguments: [deviceID])
            else { return nil }
            return DevicePresence(
                deviceID: row["device_id"], connected: (row["connected"] as Int) == 1 && (row["status"] as String) == "active",
                session: row["session"], lastSeen: Date(timeIntervalSince1970: row["last_seen"]),
                changedAt: Date(timeIntervalSince1970: row["changed_at"]))
        }
    }
}
