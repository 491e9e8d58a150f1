import Foundation
import GRDB
import WardenCore
import WardenPKI

extension Registry {
    /// Stores the hash of a fresh one-time bootstrap token for `deviceID`, replacing an unused earlier one.
    /// - Throws: `.alreadyExists` if the device is already enrolled (renewal uses mTLS, not a token).
    public func storeBootstrapToken(
        _ deviceID: DeviceID, tokenSHA256: String, expiresAt: Date, actor: String, now: Date
    ) throws {
        try write { db in
            let id = deviceID.rawValue
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM devices WHERE id = ?", arguments: [id]) == true {
                throw WardenError.alreadyExists("device '\(id)' is already enrolled; it renews over EST with its certificate")
            }
            try db.execute(
                sql: """
                    INSERT INTO bootstrap_tokens (device_id, token_sha256, created_at, expires_at, used_at)
                    VALUES (?, ?, ?, ?, NULL)
                    ON CONFLICT(device_id) DO UPDATE SET token_sha256 = excluded.token_sha256,
                        created_at = excluded.created_at, expires_at = excluded.expires_at, used_at = NULL
                    """,
                arguments: [id, tokenSHA256, now.timeIntervalSince1970, expiresAt.timeIntervalSince1970])
            try Self.appendAudit(
                db: db, actor: actor, action: "device.token", deviceID: id,
                details: ["expires_at": AuditTime.string(expiresAt)], now: now)
        }
    }

    /// Records an enrollment that presents a bootstrap token, in ONE transaction: the token must exist for this
    /// device, be unused and unexpired, and match (constant-time); it is then marked used together with the
    /// enrollment, so a token can never enroll twice, even under concurrent requests.
    public func recordWithToken(
        _ enrollment: Enrollment, tokenSHA256: String, actor: String, now: Date
    ) throws -> EnrollOutcome {
        try write { db in
            let id = enrollment.deviceID.rawValue
            guard let row = try Row.fetchOne(
                db, sql: "SELECT token_sha256, expires_at, used_at FROM bootstrap_tokens WHERE device_id = ?",
                arguments: [id])
            else { throw WardenError(.policyViolation, "no bootstrap token was issued for device '\(id)'") }
            let stored: String = row[0]
            let expiresAt: Double = row[1]
            let usedAt: Double? = row[2]
            guard Digest.constantTimeEqual(Array(stored.utf8), Array(tokenSHA256.utf8)) else {
                throw WardenError(.policyViolation, "the bootstrap token for device '\(id)' is wrong")
            }
            guard usedAt == nil else {
                throw WardenError(.policyViolation, "the bootstrap token for device '\(id)' was already used")
            }
            guard now.timeIntervalSince1970 <= expiresAt else {
                throw WardenError(.policyViolation, "the bootstrap token for device '\(id)' has expired")
            }
            var audit = try AuditWriter(db)
            let outcome = try Self.insert(enrollment, actor: actor, now: now, db: db, audit: &audit)
            try audit.finish(db)
            if outcome == .enrolled {
                try db.execute(
                    sql: "UPDATE bootstrap_tokens SET used_at = ? WHERE device_id = ?",
                    arguments: [now.timeIntervalSince1970, id])
            }
            return outcome
        }
    }

    /// Records a renewal: a new certificate for an active device, which becomes its current one. The previous
    /// certificate stays valid until it expires (the device keeps it until the new one works).
    public func recordRenewal(_ enrollment: Enrollment, previousSerial: String, actor: String, now: Date) throws -> EnrollOutcome {
        try write { db in
            let id = enrollment.deviceID.rawValue
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM devices WHERE id = ?", arguments: [id]) else {
                throw WardenError.notFound("device '\(id)' is not enrolled")
            }
            guard status == DeviceStatus.active.rawValue else {
                throw WardenError(.policyViolation, "device '\(id)' is \(status) and cannot renew")
            }
            guard try Bool.fetchOne(
                db, sql: "SELECT 1 FROM certificates WHERE serial = ? AND device_id = ? AND serial NOT IN (SELECT serial FROM revocations)",
                arguments: [previousSerial, id]) == true
            else { throw WardenError(.policyViolation, "certificate \(previousSerial) is not a valid certificate of device '\(id)'") }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM certificates WHERE serial = ?", arguments: [enrollment.serial]) == true {
                return .serialCollision
            }
            let stamp = now.timeIntervalSince1970
            try db.execute(
                sql: """
                    INSERT INTO certificates (serial, device_id, not_before, not_after, issued_at, public_key_fingerprint, sha256, der)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    enrollment.serial, id, enrollment.notBefore.timeIntervalSince1970, enrollment.notAfter.timeIntervalSince1970,
                    stamp, enrollment.publicKeyFingerprint, enrollment.sha256, Data(enrollment.der),
                ])
            try db.execute(
                sql: "UPDATE devices SET current_serial = ?, updated_at = ? WHERE id = ?", arguments: [enrollment.serial, stamp, id])
            try Self.appendAudit(
                db: db, actor: actor, action: "device.renew", deviceID: id,
                details: ["serial": enrollment.serial, "previous_serial": previousSerial, "not_after": AuditTime.string(enrollment.notAfter)],
                now: now)
            return .enrolled
        }
    }

    /// Revocation status of a serial (lowercase hex): nil if Warden never issued it.
    public func certificateStatus(serial: String) throws -> (deviceID: String, revoked: RevocationEntry?)? {
        try read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: "SELECT c.device_id, r.revoked_at, r.reason_code FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial WHERE c.serial = ?",
                arguments: [serial])
            else { return nil }
            let revokedAt: Double? = row[1]
            let reason: Int? = row[2]
            return (row[0], revokedAt.map { RevocationEntry(serial: serial, revokedAt: Date(timeIntervalSince1970: $0), reasonCode: reason ?? 0) })
        }
    }
}
