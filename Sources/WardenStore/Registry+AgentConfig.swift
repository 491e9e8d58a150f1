import Foundation
import GRDB
import WardenCore

extension Registry {
    /// Allocates the next agent config version of an active device and records what was signed, in ONE transaction
    /// with its audit event (`device.config`). `sign` receives the new version and returns the signed document's
    /// SHA-256 (hex); if it throws, nothing is recorded.
    /// - Throws: `.notFound` for an unknown device, `.policyViolation` for a device that is not active.
    public func issueAgentConfig(
        _ deviceID: DeviceID, actor: String, now: Date, sign: (Int64) throws -> String
    ) throws -> Int64 {
        try write { db in
            let id = deviceID.rawValue
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM devices WHERE id = ?", arguments: [id]) else {
                throw WardenError.notFound("device '\(id)' is not enrolled")
            }
            guard status == "active" else {
                throw WardenError.policy("device '\(id)' is \(status); no config is issued to it")
            }
            let last = try Int64.fetchOne(db, sql: "SELECT version FROM agent_configs WHERE device_id = ?", arguments: [id]) ?? 0
            let version = last + 1
            let digest = try sign(version)
            try db.execute(
                sql: """
                    INSERT INTO agent_configs (device_id, version, issued_at, sha256) VALUES (?, ?, ?, ?)
                    ON CONFLICT(device_id) DO UPDATE SET version = excluded.version, issued_at = excluded.issued_at,
                        sha256 = excluded.sha256
                    """,
                arguments: [id, version, now.timeIntervalSince1970, digest])
            try Self.appendAudit(
                db: db, actor: actor, action: "device.config", deviceID: id,
                details: ["version": String(version), "sha256": digest], now: now)
            return version
        }
    }

    /// The latest issued agent config of one device (``latestAgentConfigs()``).
    public struct LatestAgentConfig: Sendable, Equatable {
        /// The device.
        public var deviceID: String
        /// Its latest config version.
        public var version: Int64
        /// SHA-256 (hex) of the signed document.
        public var sha256: String
    }

    /// The latest issued agent config of every active device, by device id: one small indexed read, cheap enough to
    /// poll (`serve`'s config publisher).
    public func latestAgentConfigs() throws -> [LatestAgentConfig] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT c.device_id, c.version, c.sha256 FROM agent_configs c JOIN devices d ON d.id = c.device_id
                WHERE d.status = 'active' ORDER BY c.device_id
                """).map { LatestAgentConfig(deviceID: $0[0], version: $0[1], sha256: $0[2]) }
        }
    }
}
