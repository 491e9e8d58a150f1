import Foundation
import GRDB
import WardenCore
import WardenPKI

/// One policy document as stored in a version: its file name and exact bytes.
public struct StoredPolicyDocument: Sendable, Equatable {
    /// File name, e.g. `default.json`.
    public var name: String
    /// The document's bytes, as applied.
    public var bytes: [UInt8]
    /// SHA-256 of ``bytes``, lowercase hex.
    public var sha256: String

    /// A document; its digest is computed here.
    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
        self.sha256 = Digest.hex(Digest.sha256(bytes))
    }
}

/// One numbered policy version.
public struct PolicyVersion: Sendable, Equatable, Codable {
    /// 1, 2, 3…; the newest is the one in force.
    public var version: Int
    /// When it was stored.
    public var createdAt: Date
    /// Who stored it.
    public var actor: String
    /// How: `apply <path>` or `rollback to <n>`.
    public var origin: String
    /// SHA-256 over the documents' digests (see ``Registry/policyDigest(_:)``).
    public var digest: String
    /// Statements in all its documents.
    public var statements: Int
    /// Document names, in order.
    public var documents: [String]
}

/// An operator (administrator) certificate: a client certificate whose CN starts with `warden-op-` and that
/// carries a role.
public struct OperatorCertificateRecord: Sendable, Equatable, Codable {
    /// Serial, lowercase hex.
    public var serial: String
    /// The operator's CN, `warden-op-<name>`.
    public var name: String
    /// Its role, e.g. `auditor`.
    public var role: String
    /// Validity start.
    public var notBefore: Date
    /// Validity end.
    public var notAfter: Date
    /// When it was issued.
    public var issuedAt: Date
    /// Revocation time, if revoked.
    public var revokedAt: Date?
}

extension Registry {
    /// What storing a policy version did.
    public enum PolicyStoreOutcome: Sendable, Equatable {
        /// A new version was stored (and audited).
        case stored(PolicyVersion)
        /// The documents are identical to the active version: nothing was written.
        case unchanged(PolicyVersion)
    }

    /// The digest of a set of documents: SHA-256 of the lines `<sha256 of document>\n`, in order. File names do not
    /// count, so renaming a file is not a change.
    public static func policyDigest(_ documents: [StoredPolicyDocument]) -> String {
        Digest.hex(Digest.sha256(Array(documents.map { $0.sha256 + "\n" }.joined().utf8)))
    }

    /// Stores `documents` as the next version, with an audit event (`action`, the version, the digest and `details`)
    /// in the same transaction, unless they are identical to the active version.
    /// - Parameters:
    ///   - action: `policy.apply` or `policy.rollback`.
    ///   - origin: shown in the history, e.g. `apply policies/`.
    public func storePolicyVersion(
        _ documents: [StoredPolicyDocument], statements: Int, origin: String, action: String, details: [String: String],
        actor: String, now: Date
    ) throws -> PolicyStoreOutcome {
        guard !documents.isEmpty else { throw WardenError.badInput("a policy version needs at least one document") }
        let digest = Self.policyDigest(documents)
        return try write { db in
            if let active = try Self.activePolicyVersion(db), active.digest == digest { return .unchanged(active) }
            let next = (try Int.fetchOne(db, sql: "SELECT MAX(version) FROM policy_versions") ?? 0) + 1
            try db.execute(
                sql: "INSERT INTO policy_versions (version, created_at, actor, origin, digest, statements) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [next, now.timeIntervalSince1970, actor, origin, digest, statements])
            for (position, document) in documents.enumerated() {
                try db.execute(
                    sql: "INSERT INTO policy_documents (version, position, name, bytes, sha256) VALUES (?, ?, ?, ?, ?)",
                    arguments: [next, position, document.name, Data(document.bytes), document.sha256])
            }
            var audited = details
            audited["version"] = String(next)
            audited["digest"] = digest
            audited["documents"] = documents.map(\.name).joined(separator: ",")
            audited["statements"] = String(statements)
            try Self.appendAudit(db: db, actor: actor, action: action, deviceID: nil, details: audited, now: now)
            return .stored(
                PolicyVersion(
                    version: next, createdAt: now, actor: actor, origin: origin, digest: digest, statements: statements,
                    documents: documents.map(\.name)))
        }
    }

    /// Every stored version, oldest first.
    public func policyVersions() throws -> [PolicyVersion] {
        try read { db in try Self.policyVersions(db, sql: "ORDER BY v.version") }
    }

    /// The version in force (the newest), if any was ever applied.
    public func activePolicyVersion() throws -> PolicyVersion? {
        try read { db in try Self.activePolicyVersion(db) }
    }

    /// The number of the version in force, 0 when none: a cheap query for pollers.
    public func activePolicyNumber() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT MAX(version) FROM policy_versions") ?? 0 }
    }

    /// The documents of `version`, in order.
    /// - Throws: `.notFound` if there is no such version.
    public func policyDocuments(version: Int) throws -> [StoredPolicyDocument] {
        try read { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT name, bytes FROM policy_documents WHERE version = ? ORDER BY position", arguments: [version])
            guard !rows.isEmpty else { throw WardenError.notFound("there is no policy version \(version)") }
            return rows.map { row in
                let bytes: Data = row[1]
                return StoredPolicyDocument(name: row[0], bytes: Array(bytes))
            }
        }
    }

    static func activePolicyVersion(_ db: Database) throws -> PolicyVersion? {
        try policyVersions(db, sql: "ORDER BY v.version DESC LIMIT 1").first
    }

    static func policyVersions(_ db: Database, sql suffix: String) throws -> [PolicyVersion] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT v.version, v.created_at, v.actor, v.origin, v.digest, v.statements,
                       (SELECT group_concat(name, char(10)) FROM (SELECT name FROM policy_documents d
                        WHERE d.version = v.version ORDER BY d.position))
                FROM policy_versions v \(suffix)
                """
        ).map { row in
            let names: String? = row[6]
            return PolicyVersion(
                version: row[0], createdAt: Date(timeIntervalSince1970: row[1]), actor: row[2], origin: row[3], digest: row[4],
                statements: row[5], documents: names.map { $0.split(separator: "\n").map(String.init) } ?? [])
        }
    }

    // MARK: - Operator certificates

    /// Records an operator certificate, audited (`operator.issue`).
    /// - Throws: `.alreadyExists` if the serial or the certificate is already recorded.
    public func recordOperatorCertificate(
        name: String, role: String, serial: String, der: [UInt8], notBefore: Date, notAfter: Date, actor: String, now: Date
    ) throws {
        try write { db in
            let taken =
                try Bool.fetchOne(db, sql: "SELECT 1 FROM certificates WHERE serial = ?", arguments: [serial]) == true
                || Bool.fetchOne(db, sql: "SELECT 1 FROM operator_certificates WHERE serial = ?", arguments: [serial]) == true
            if taken { throw WardenError.alreadyExists("serial \(serial) is already recorded") }
            try db.execute(
                sql: """
                    INSERT INTO operator_certificates (serial, name, role, not_before, not_after, issued_at, sha256, der)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    serial, name, role, notBefore.timeIntervalSince1970, notAfter.timeIntervalSince1970, now.timeIntervalSince1970,
                    Digest.hex(Digest.sha256(der)), Data(der),
                ])
            try Self.appendAudit(
                db: db, actor: actor, action: "operator.issue", deviceID: nil,
                details: ["operator": name, "role": role, "serial": serial, "not_after": AuditTime.string(notAfter)], now: now)
        }
    }

    /// The operator certificate with `serial`, if recorded.
    public func operatorCertificate(serial: String) throws -> OperatorCertificateRecord? {
        try read { db in try Self.operatorCertificates(db, sql: "WHERE serial = ?", arguments: [serial]).first }
    }

    /// Every operator certificate, by name then issue time.
    public func operatorCertificates() throws -> [OperatorCertificateRecord] {
        try read { db in try Self.operatorCertificates(db, sql: "ORDER BY name, issued_at", arguments: []) }
    }

    /// Revokes every unrevoked certificate of operator `name`, reserves the next CRL number and lets `publish` stage
    /// the CRL (which now lists them) inside the same transaction, audited (`operator.revoke`).
    /// - Returns: the serials revoked and the CRL number.
    /// - Throws: `.notFound` if the operator has no unrevoked certificate.
    public func revokeOperator(
        name: String, reasonCode: Int, actor: String, now: Date, publish: (UInt64, [RevocationEntry]) throws -> Void
    ) throws -> Revocation {
        try write { db in
            let serials = try String.fetchAll(
                db, sql: "SELECT serial FROM operator_certificates WHERE name = ? AND revoked_at IS NULL ORDER BY serial",
                arguments: [name])
            guard !serials.isEmpty else { throw WardenError.notFound("operator '\(name)' has no certificate that is not revoked") }
            try db.execute(
                sql: "UPDATE operator_certificates SET revoked_at = ?, reason_code = ? WHERE name = ? AND revoked_at IS NULL",
                arguments: [now.timeIntervalSince1970, reasonCode, name])
            let number = try Self.nextCRLNumber(db)
            try publish(number, try Self.revocationEntries(db))
            try Self.appendAudit(
                db: db, actor: actor, action: "operator.revoke", deviceID: nil,
                details: ["operator": name, "serials": serials.joined(separator: ","), "reason": String(reasonCode), "crl_number": String(number)],
                now: now)
            return Revocation(serials: serials, crlNumber: number)
        }
    }

    static func operatorCertificates(_ db: Database, sql suffix: String, arguments: StatementArguments) throws -> [OperatorCertificateRecord] {
        try Row.fetchAll(
            db, sql: "SELECT serial, name, role, not_before, not_after, issued_at, revoked_at FROM operator_certificates \(suffix)",
            arguments: arguments
        ).map { row in
            let revoked: Double? = row[6]
            return OperatorCertificateRecord(
                serial: row[0], name: row[1], role: row[2], notBefore: Date(timeIntervalSince1970: row[3]),
                notAfter: Date(timeIntervalSince1970: row[4]), issuedAt: Date(timeIntervalSince1970: row[5]),
                revokedAt: revoked.map { Date(timeIntervalSince1970: $0) })
        }
    }
}
