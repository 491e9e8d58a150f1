import Foundation
import GRDB
import WardenCore

extension Registry {
    /// One device, or nil.
    public func device(_ id: String) throws -> DeviceRecord? {
        try read { db in try Self.devices(db, whereClause: "WHERE d.id = ?", arguments: [id]).first }
    }

    /// All devices, optionally only those with `status`, sorted by id.
    public func devices(status: DeviceStatus? = nil) throws -> [DeviceRecord] {
        try read { db in
            if let status {
                return try Self.devices(db, whereClause: "WHERE d.status = ?", arguments: [status.rawValue])
            }
            return try Self.devices(db, whereClause: "", arguments: [])
        }
    }

    static func devices(_ db: Database, whereClause: String, arguments: StatementArguments) throws -> [DeviceRecord] {
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT d.id, d.status, d.created_at, d.updated_at, d.revoked_at, d.current_serial,
                       c.public_key_fingerprint, c.not_after,
                       (SELECT group_concat(name, ',') FROM (SELECT name FROM device_groups g WHERE g.device_id = d.id ORDER BY name))
                FROM devices d JOIN certificates c ON c.serial = d.current_serial
                \(whereClause) ORDER BY d.id
                """, arguments: arguments)
        return rows.map { row in
            let groups: String? = row[8]
            let revokedAt: Double? = row[4]
            return DeviceRecord(
                id: row[0],
                status: DeviceStatus(rawValue: row[1]) ?? .revoked,
                groups: groups.map { $0.split(separator: ",").map(String.init) } ?? [],
                createdAt: Date(timeIntervalSince1970: row[2]),
                updatedAt: Date(timeIntervalSince1970: row[3]),
                revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:)),
                publicKeyFingerprint: row[6],
                currentSerial: row[5],
                certificateNotAfter: Date(timeIntervalSince1970: row[7]))
        }
    }

    /// Certificates issued to a device, oldest first.
    public func certificates(of deviceID: String) throws -> [CertificateRecord] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.serial, c.device_id, c.not_before, c.not_after, c.issued_at, c.public_key_fingerprint,
                           c.sha256, c.der, r.reason_code, r.revoked_at
                    FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
                    WHERE c.device_id = ? ORDER BY c.issued_at, c.serial
                    """, arguments: [deviceID]
            ).map { row in
                let revokedAt: Double? = row[9]
                return CertificateRecord(
                    serial: row[0], deviceID: row[1], notBefore: Date(timeIntervalSince1970: row[2]),
                    notAfter: Date(timeIntervalSince1970: row[3]), issuedAt: Date(timeIntervalSince1970: row[4]),
                    publicKeyFingerprint: row[5], sha256: row[6], der: row[7], revocationReason: row[8],
                    revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    /// Number of certificates recorded (for tests and metrics).
    public func certificateCount() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM certificates") ?? 0 }
    }

    /// A number that grows with every audited change (the audit chain's head): pollers compare it to notice that
    /// the registry changed without reading it.
    public func changeMarker() throws -> Int64 {
        try read { db in try Int64.fetchOne(db, sql: "SELECT seq FROM audit_head WHERE id = 1") ?? 0 }
    }

    /// The last CRL number reserved.
    public func lastCRLNumber() throws -> UInt64 {
        try read { db in UInt64(try Int64.fetchOne(db, sql: "SELECT last_number FROM crl_state WHERE id = 1") ?? 0) }
    }

    /// Every revoked certificate.
    public func revocations() throws -> [RevocationEntry] {
        try read { db in try Self.revocationEntries(db) }
    }

    /// Audit events in chain order, filtered by device and start time.
    public func auditEvents(deviceID: String? = nil, since: Date? = nil) throws -> [AuditEvent] {
        try read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let deviceID {
                conditions.append("device_id = ?")
                _ = arguments.append(contentsOf: [deviceID])
            }
            if let since {
                conditions.append("ts >= ?")
                _ = arguments.append(contentsOf: [AuditTime.string(since)])
            }
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Self.fetchAudit(db, sql: "SELECT * FROM audit_events \(whereClause) ORDER BY seq", arguments: arguments)
        }
    }

    static func fetchAudit(_ db: Database, sql: String, arguments: StatementArguments) throws -> [AuditEvent] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            AuditEvent(
                seq: row["seq"], timestamp: row["ts"], actor: row["actor"], action: row["action"],
                deviceID: row["device_id"], details: row["details"], previousHash: row["prev_hash"], hash: row["hash"])
        }
    }

    /// Walks the whole audit chain and reports the first event that does not verify:
    /// an edited row (hash mismatch), a deleted row (gap in `seq` or broken link), a reordered row (broken
    /// link), or a truncated tail (head record ahead of the last event).
    public func verifyAudit() throws -> AuditVerification {
        try read { db in
            var expectedSeq: Int64 = 1
            var previous = AuditEvent.genesisHash
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit_events ORDER BY seq")
            while let row = try cursor.next() {
                let event = AuditEvent(
                    seq: row["seq"], timestamp: row["ts"], actor: row["actor"], action: row["action"],
                    deviceID: row["device_id"], details: row["details"], previousHash: row["prev_hash"],
                    hash: row["hash"])
                if event.seq != expectedSeq {
                    return .broken(seq: expectedSeq, reason: "event #\(expectedSeq) is missing (next present is #\(event.seq))")
                }
                if event.previousHash != previous {
                    return .broken(seq: event.seq, reason: "event #\(event.seq) does not link to event #\(event.seq - 1) (deleted or reordered)")
                }
                if event.expectedHash != event.hash {
                    return .broken(seq: event.seq, reason: "event #\(event.seq) (\(event.action)) was modified: its hash does not match its contents")
                }
                previous = event.hash
                expectedSeq += 1
            }
            let count = expectedSeq - 1
            if let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_head WHERE id = 1") {
                let headSeq: Int64 = head[0]
                let headHash: String = head[1]
                if headSeq != count || headHash != previous {
                    return .broken(seq: min(headSeq, count + 1), reason: "the chain ends at event #\(count) but the recorded head is event #\(headSeq) (events deleted from the end, or head edited)")
                }
            } else if count > 0 {
                return .broken(seq: 1, reason: "the audit head record is missing")
            }
            return .intact(events: count, head: previous)
        }
    }
}
