import Foundation
import GRDB
import WardenCore

/// The registry: devices, certificates, revocations, CRL numbering and the audit chain, in one SQLite
/// database (WAL mode, `synchronous=FULL`) owned by this type.
///
/// Every public operation is one IMMEDIATE transaction that also appends its audit event, so a change and
/// its audit record land together or not at all, and concurrent processes serialize on the write lock
/// instead of forking the audit chain. No GRDB type escapes this module.
public final class Registry: Sendable {
    let pool: DatabasePool
    /// Path of the database file.
    public let path: String

    /// Opens (creating if needed) the registry at `path` and applies pending migrations.
    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            // WAL + FULL: a committed transaction survives power loss, not only a process crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw WardenError.storage("cannot open registry '\(path)': \(error.message ?? error.description)")
        }
        _ = chmod(path, 0o600)
    }

    /// Append-only named migrations; each runs in its own transaction.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-registry") { db in
            try db.execute(sql: """
                CREATE TABLE devices (
                    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 3 AND 63),
                    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    revoked_at REAL,
                    current_serial TEXT NOT NULL
                ) STRICT;
                CREATE TABLE device_groups (
                    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                    PRIMARY KEY (device_id, name)
                ) STRICT;
                CREATE TABLE certificates (
                    serial TEXT PRIMARY KEY NOT NULL,
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    not_before REAL NOT NULL,
                    not_after REAL NOT NULL,
                    issued_at REAL NOT NULL,
                    public_key_fingerprint TEXT NOT NULL,
                    sha256 TEXT NOT NULL UNIQUE,
                    der BLOB NOT NULL
                ) STRICT;
                CREATE INDEX certificates_by_device ON certificates(device_id);
                CREATE TABLE revocations (
                    serial TEXT PRIMARY KEY NOT NULL REFERENCES certificates(serial),
                    revoked_at REAL NOT NULL,
                    reason_code INTEGER NOT NULL CHECK (reason_code BETWEEN 0 AND 10 AND reason_code NOT IN (7, 8))
                ) STRICT;
                CREATE TABLE crl_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    last_number INTEGER NOT NULL CHECK (last_number >= 0)
                ) STRICT;
                INSERT INTO crl_state (id, last_number) VALUES (1, 0);
                CREATE TABLE audit_events (
                    seq INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 1),
                    ts TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    device_id TEXT,
                    details TEXT NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL UNIQUE
                ) STRICT;
                CREATE INDEX audit_by_device ON audit_events(device_id, seq);
                CREATE TABLE audit_head (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    seq INTEGER NOT NULL,
                    hash TEXT NOT NULL
                ) STRICT;
                """)
        }
        migrator.registerMigration("v2-bootstrap-tokens") { db in
            // One-time EST bootstrap tokens (RFC 7030 §3.2.3 HTTP-based client authentication). Only a SHA-256
            // of the token is stored; the token itself is shown once, by `warden device token`.
            try db.execute(sql: """
                CREATE TABLE bootstrap_tokens (
                    device_id TEXT PRIMARY KEY NOT NULL CHECK (length(device_id) BETWEEN 3 AND 63),
                    token_sha256 TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    expires_at REAL NOT NULL,
                    used_at REAL
                ) STRICT;
                """)
        }
        migrator.registerMigration("v3-policy-versions") { db in
            // Numbered policy versions (`warden policy apply|rollback`): the documents' bytes and digests. The active
            // version is always the newest one (a rollback stores a copy as a new version). Operator certificates
            // (`warden operator issue`) carry a role; their CN always starts with the reserved `warden-op-`, so they
            // can never collide with a device id.
            try db.execute(sql: """
                CREATE TABLE policy_versions (
                    version INTEGER PRIMARY KEY NOT NULL CHECK (version >= 1),
                    created_at REAL NOT NULL,
                    actor TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    digest TEXT NOT NULL CHECK (length(digest) = 64),
                    statements INTEGER NOT NULL CHECK (statements >= 0)
                ) STRICT;
                CREATE TABLE policy_documents (
                    version INTEGER NOT NULL REFERENCES policy_versions(version),
                    position INTEGER NOT NULL CHECK (position >= 0),
                    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
                    bytes BLOB NOT NULL,
                    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
                    PRIMARY KEY (version, position)
                ) STRICT;
                CREATE TABLE operator_certificates (
                    serial TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL CHECK (name LIKE 'warden-op-%' AND length(name) BETWEEN 11 AND 64),
                    role TEXT NOT NULL CHECK (length(role) BETWEEN 1 AND 64),
                    not_before REAL NOT NULL,
                    not_after REAL NOT NULL,
                    issued_at REAL NOT NULL,
                    sha256 TEXT NOT NULL UNIQUE,
                    der BLOB NOT NULL,
                    revoked_at REAL,
                    reason_code INTEGER CHECK (reason_code IS NULL OR (reason_code BETWEEN 0 AND 10 AND reason_code NOT IN (7, 8)))
                ) STRICT;
                CREATE INDEX operator_certificates_by_name ON operator_certificates(name);
                """)
        }
        migrator.registerMigration("v3-rollouts") { db in
            // Staged firmware rollouts (Uptane director style: one row per device says what it is assigned).
            try db.execute(sql: """
                CREATE TABLE rollouts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    target_name TEXT NOT NULL CHECK (length(target_name) BETWEEN 1 AND 128),
                    target_version TEXT NOT NULL CHECK (length(target_version) BETWEEN 1 AND 64),
                    target_sha256 TEXT NOT NULL CHECK (length(target_sha256) = 64),
                    group_name TEXT NOT NULL CHECK (length(group_name) BETWEEN 1 AND 64),
                    waves TEXT NOT NULL,
                    abort_failure_rate REAL NOT NULL CHECK (abort_failure_rate BETWEEN 0 AND 100),
                    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'aborted', 'completed')),
                    current_wave INTEGER NOT NULL CHECK (current_wave >= 0),
                    reason TEXT,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL
                ) STRICT;
                CREATE TABLE rollout_devices (
                    rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    wave INTEGER NOT NULL CHECK (wave >= 0),
                    state TEXT NOT NULL CHECK (state IN ('scheduled', 'pending', 'downloading', 'succeeded', 'failed', 'cancelled')),
                    reason TEXT,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (rollout_id, device_id)
                ) STRICT;
                CREATE INDEX rollout_devices_by_device ON rollout_devices(device_id, state);
                """)
        }
        migrator.registerMigration("v4-device-presence") { db in
            // Presence from the devices' birth / Last Will messages (`d/<id>/up/presence`), kept by `warden serve`.
            // One row per device; `session` lets a late Last Will of an old session be told from the current one.
            try db.execute(sql: """
                CREATE TABLE device_presence (
                    device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id),
                    connected INTEGER NOT NULL CHECK (connected IN (0, 1)),
                    session TEXT NOT NULL CHECK (length(session) BETWEEN 1 AND 64),
                    last_seen REAL NOT NULL,
                    changed_at REAL NOT NULL
                ) STRICT;
                """)
        }
        migrator.registerMigration("v5-agent-config") { db in
            // The last signed agent config version issued per device (`warden device config`): versions only go up,
            // so an agent can refuse any config older than one it already accepted.
            try db.execute(sql: """
                CREATE TABLE agent_configs (
                    device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id),
                    version INTEGER NOT NULL CHECK (version >= 1),
                    issued_at REAL NOT NULL,
                    sha256 TEXT NOT NULL CHECK (length(sha256) = 64)
                ) STRICT;
                """)
        }
        migrator.registerMigration("v6-telemetry") { db in
            // Device telemetry from `d/<id>/up/telemetry` batches, kept by `warden serve`'s telemetry ingest. The key is
            // the agent queue's idempotent id, so a redelivered record is dropped (INSERT OR IGNORE). Bounded: 7 days and
            // 100,000 rows per device (Registry.telemetryRetention, .telemetryRowsPerDevice). Counters per device.
            try db.execute(sql: """
                CREATE TABLE device_telemetry (
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    boot INTEGER NOT NULL CHECK (boot BETWEEN 0 AND 4294967295),
                    seq INTEGER NOT NULL CHECK (seq >= 0),
                    received_at REAL NOT NULL,
                    payload BLOB NOT NULL,
                    PRIMARY KEY (device_id, boot, seq)
                ) STRICT, WITHOUT ROWID;
                CREATE INDEX device_telemetry_by_time ON device_telemetry(device_id, received_at);
                CREATE TABLE device_telemetry_stats (
                    device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id),
                    stored INTEGER NOT NULL,
                    duplicates INTEGER NOT NULL,
                    malformed_batches INTEGER NOT NULL,
                    kept INTEGER NOT NULL,
                    last_received REAL
                ) STRICT;
                """)
        }
        return migrator
    }

    // MARK: - Writes

    /// Outcome of recording an enrollment.
    public enum EnrollOutcome: Sendable, Equatable {
        /// The device and certificate were recorded (and audited).
        case enrolled
        /// The device already exists with this same public key: nothing was written (idempotent re-run).
        case alreadyEnrolledWithSameKey(serial: String)
        /// The device id is taken by another key, or was revoked.
        case conflict(String)
        /// The serial collided with an existing one: issue a fresh certificate and try again.
        case serialCollision
    }

    /// Records a batch of enrollments in ONE transaction, appending one audit event each.
    /// Every returned `.enrolled` is durable when this returns.
    public func record(_ enrollments: [Enrollment], actor: String, now: Date) throws -> [EnrollOutcome] {
        try write { db in
            var audit = try AuditWriter(db)
            let statements = try EnrollStatements(db)
            var outcomes: [EnrollOutcome] = []
            outcomes.reserveCapacity(enrollments.count)
            for enrollment in enrollments {
                outcomes.append(try Self.insert(enrollment, actor: actor, now: now, db: db, statements: statements, audit: &audit))
            }
            try audit.finish(db)
            return outcomes
        }
    }

    /// The statements of ``insert(_:actor:now:db:audit:)``, looked up once per transaction instead of once per row
    /// (a batch records hundreds of rows per transaction; each lookup hashes the SQL text).
    struct EnrollStatements {
        let existing: Statement
        let deleteDevice: Statement
        let insertDevice: Statement
        let insertGroup: Statement
        let insertCertificate: Statement

        init(_ db: Database) throws {
            existing = try db.cachedStatement(
                sql: """
                    SELECT d.status, d.current_serial, c.public_key_fingerprint FROM devices d
                    JOIN certificates c ON c.serial = d.current_serial WHERE d.id = ?
                    """)
            deleteDevice = try db.cachedStatement(sql: "DELETE FROM devices WHERE id = ?")
            insertDevice = try db.cachedStatement(
                sql: """
                    INSERT INTO devices (id, status, created_at, updated_at, current_serial) VALUES (?, 'active', ?, ?, ?)
                    ON CONFLICT (id) DO NOTHING
                    """)
            insertGroup = try db.cachedStatement(sql: "INSERT INTO device_groups (device_id, name) VALUES (?, ?)")
            insertCertificate = try db.cachedStatement(
                sql: """
                    INSERT INTO certificates (serial, device_id, not_before, not_after, issued_at, public_key_fingerprint, sha256, der)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING
                    """)
        }
    }

    static func insert(_ e: Enrollment, actor: String, now: Date, db: Database, audit: inout AuditWriter) throws -> EnrollOutcome {
        try insert(e, actor: actor, now: now, db: db, statements: EnrollStatements(db), audit: &audit)
    }

    static func insert(
        _ e: Enrollment, actor: String, now: Date, db: Database, statements: EnrollStatements, audit: inout AuditWriter
    ) throws -> EnrollOutcome {
        let id = e.deviceID.rawValue
        let stamp = now.timeIntervalSince1970
        // The usual case costs three inserts and no lookup: the primary keys tell an enrolled id and a taken serial
        // apart (`ON CONFLICT … DO NOTHING` + the change count; a statement that fails is not reused, since SQLite
        // reports its error again on the next reset).
        try statements.insertDevice.execute(arguments: [id, stamp, stamp, e.serial])
        if db.changesCount == 0 {
            guard let existing = try Row.fetchOne(statements.existing, arguments: [id]) else {
                throw WardenError.storage("device '\(id)' is in the registry without its certificate")
            }
            let status: String = existing[0]
            let serial: String = existing[1]
            let fingerprint: String = existing[2]
            if status == DeviceStatus.revoked.rawValue {
                return .conflict("device '\(id)' was revoked; a revoked device id is never reissued")
            }
            if fingerprint == e.publicKeyFingerprint { return .alreadyEnrolledWithSameKey(serial: serial) }
            return .conflict("device '\(id)' is already enrolled with a different key")
        }
        try statements.insertCertificate.execute(
            arguments: [
                e.serial, id, e.notBefore.timeIntervalSince1970, e.notAfter.timeIntervalSince1970, stamp,
                e.publicKeyFingerprint, e.sha256, Data(e.der),
            ])
        if db.changesCount == 0 {
            // The serial is taken (126 random bits: astronomically rare): undo this row's device, the caller retries.
            try statements.deleteDevice.execute(arguments: [id])
            return .serialCollision
        }
        let groups = e.groups.isEmpty ? [] : Array(Set(e.groups)).sorted()
        for group in groups {
            try statements.insertGroup.execute(arguments: [id, group])
        }
        // The chunk's writer keeps the chain head in memory: one head update per transaction, not per row.
        let notAfter = audit.timeString(e.notAfter)
        try audit.append(
            db, actor: actor, action: "device.enroll", deviceID: id,
            details: [
                "serial": e.serial, "groups": groups.joined(separator: ","), "not_after": notAfter,
                "public_key": e.publicKeyFingerprint,
            ], now: now)
        return .enrolled
    }

    /// What a revocation changed.
    public struct Revocation: Sendable {
        /// Serials newly put on the CRL.
        public var serials: [String]
        /// The CRL number reserved for the CRL that includes them.
        public var crlNumber: UInt64
    }

    /// Revokes `deviceID` and every certificate it holds, reserves the next CRL number, and lets `publish`
    /// build and stage the CRL inside the same transaction: if `publish` throws, nothing is revoked.
    ///
    /// - Parameter publish: builds, signs and stages the CRL for the given number and entries; it must not
    ///   make it visible yet. Called with the database write lock held.
    public func revoke(
        _ deviceID: DeviceID, reasonCode: Int, actor: String, now: Date,
        publish: (UInt64, [RevocationEntry]) throws -> Void
    ) throws -> Revocation {
        try write { db in
            let id = deviceID.rawValue
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM devices WHERE id = ?", arguments: [id])
            else { throw WardenError.notFound("device '\(id)' is not enrolled") }
            guard status != DeviceStatus.revoked.rawValue else {
                throw WardenError.alreadyExists("device '\(id)' is already revoked")
            }
            let stamp = now.timeIntervalSince1970
            let serials = try String.fetchAll(
                db,
                sql: """
                    SELECT serial FROM certificates WHERE device_id = ?
                    AND serial NOT IN (SELECT serial FROM revocations) ORDER BY serial
                    """, arguments: [id])
            for serial in serials {
                try db.execute(
                    sql: "INSERT INTO revocations (serial, revoked_at, reason_code) VALUES (?, ?, ?)",
                    arguments: [serial, stamp, reasonCode])
            }
            try db.execute(
                sql: "UPDATE devices SET status = 'revoked', revoked_at = ?, updated_at = ? WHERE id = ?",
                arguments: [stamp, stamp, id])
            let number = try Self.nextCRLNumber(db)
            let entries = try Self.revocationEntries(db)
            try publish(number, entries)
            try Self.appendAudit(
                db: db, actor: actor, action: "device.revoke", deviceID: id,
                details: ["serials": serials.joined(separator: ","), "reason": String(reasonCode), "crl_number": String(number)],
                now: now)
            return Revocation(serials: serials, crlNumber: number)
        }
    }

    /// Reserves the next CRL number and lets `publish` build and stage a CRL with every revocation, audited.
    public func issueCRL(actor: String, now: Date, publish: (UInt64, [RevocationEntry]) throws -> Void) throws -> UInt64 {
        try write { db in
            let number = try Self.nextCRLNumber(db)
            let entries = try Self.revocationEntries(db)
            try publish(number, entries)
            try Self.appendAudit(
                db: db, actor: actor, action: "crl.issue", deviceID: nil,
                details: ["crl_number": String(number), "entries": String(entries.count)], now: now)
            return number
        }
    }

    static func nextCRLNumber(_ db: Database) throws -> UInt64 {
        try db.execute(sql: "UPDATE crl_state SET last_number = last_number + 1 WHERE id = 1")
        let number = try Int64.fetchOne(db, sql: "SELECT last_number FROM crl_state WHERE id = 1") ?? 0
        return UInt64(number)
    }

    static func revocationEntries(_ db: Database) throws -> [RevocationEntry] {
        // Device revocations, and revoked operator certificates (same issuing CA, same CRL).
        try Row.fetchAll(
            db,
            sql: """
                SELECT serial, revoked_at, reason_code FROM revocations
                UNION ALL SELECT serial, revoked_at, reason_code FROM operator_certificates WHERE revoked_at IS NOT NULL
                ORDER BY serial
                """
        ).map {
            RevocationEntry(
                serial: $0[0], revokedAt: Date(timeIntervalSince1970: $0[1]), reasonCode: $0[2])
        }
    }

    /// Appends a free-standing audit event (e.g. `ca.init`).
    public func audit(action: String, deviceID: String?, details: [String: String], actor: String, now: Date) throws {
        try write { db in
            try Self.appendAudit(db: db, actor: actor, action: action, deviceID: deviceID, details: details, now: now)
        }
    }

    static func appendAudit(
        db: Database, actor: String, action: String, deviceID: String?, details: [String: String], now: Date
    ) throws {
        var audit = try AuditWriter(db)
        try audit.append(db, actor: actor, action: action, deviceID: deviceID, details: details, now: now)
        try audit.finish(db)
    }

    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch let error as DatabaseError {
            throw WardenError.storage("registry '\(path)': \(error.message ?? error.description)")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.read(body)
        } catch let error as DatabaseError {
            throw WardenError.storage("registry '\(path)': \(error.message ?? error.description)")
        }
    }
}

/// Appends events to the audit chain inside one write transaction, keeping the chain head in memory so a batch
/// of N events costs N inserts and one head update.
struct AuditWriter {
    var seq: Int64
    var previous: String
    var dirty = false
    /// The last two times formatted: a batch formats the same `now` and the same `not_after` for every event.
    var formatted: [(Date, String)] = []
    /// The INSERT statement, looked up on the first append.
    var insertEvent: Statement?

    /// Reads the current head.
    init(_ db: Database) throws {
        let head = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"))
        seq = head?[0] ?? 0
        previous = head?[1] ?? AuditEvent.genesisHash
    }

    /// Appends one event linked to the previous one.
    mutating func append(
        _ db: Database, actor: String, action: String, deviceID: String?, details: [String: String], now: Date
    ) throws {
        var event = AuditEvent(
            seq: seq + 1, timestamp: timeString(now), actor: actor, action: action, deviceID: deviceID,
            details: CanonicalJSON.encode(details), previousHash: previous, hash: "")
        event.hash = event.expectedHash
        if insertEvent == nil {
            insertEvent = try db.cachedStatement(
                sql: """
                    INSERT INTO audit_events (seq, ts, actor, action, device_id, details, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """)
        }
        try insertEvent!.execute(arguments: [
            event.seq, event.timestamp, event.actor, event.action, event.deviceID, event.details, event.previousHash, event.hash,
        ])
        seq = event.seq
        previous = event.hash
        dirty = true
    }

    /// ``AuditTime/string(_:)``, remembering the last two results.
    mutating func timeString(_ date: Date) -> String {
        if let hit = formatted.first(where: { $0.0 == date }) { return hit.1 }
        let text = AuditTime.string(date)
        if formatted.count == 2 { formatted.removeFirst() }
        formatted.append((date, text))
        return text
    }

    /// Records the new head.
    func finish(_ db: Database) throws {
        guard dirty else { return }
        try db.cachedStatement(
            sql: "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
        ).execute(arguments: [seq, previous])
    }
}
