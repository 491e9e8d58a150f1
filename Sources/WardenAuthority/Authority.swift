import Foundation
import WardenCore
import WardenPKI
import WardenStore

/// The authority's operations, each one complete or not at all: enroll a device, revoke it, publish a CRL.
///
/// It combines the issuing CA (WardenPKI) with the registry (WardenStore); the CLI and the servers call
/// these operations instead of composing the pieces themselves.
public struct Authority: Sendable {
    /// The home this authority works in.
    public let home: WardenHome
    /// The registry.
    public let registry: Registry
    /// The issuing CA.
    public let ca: CertificateAuthority
    /// Who is acting, recorded in the audit log (e.g. `cli:root`).
    public let actor: String

    /// Default lifetime of a CRL (RFC 5280 §5.1.2.5 nextUpdate).
    public static let defaultCRLValidity = WardenDuration(seconds: 7 * 86_400)

    /// Loads the issuing CA (with `passphrase`) and opens the registry.
    public static func open(home: WardenHome, passphrase: [UInt8], actor: String) throws -> Authority {
        let ca = try CertificateAuthority.load(layout: home.ca, passphrase: passphrase)
        let registry = try Registry(path: home.registryPath)
        return Authority(home: home, registry: registry, ca: ca, actor: actor)
    }

    /// Validates a group name: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
    public static func validateGroup(_ name: String) throws {
        let bytes = Array(name.utf8)
        let ok = (1...64).contains(bytes.count)
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
            && bytes[0] != 0x2D && bytes[0] != 0x2E && bytes[0] != 0x5F
        guard ok else {
            throw WardenError.badInput("group '\(name.prefix(80))' must be 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
        }
    }

    /// Enrolls one device from its CSR: validate, issue, record (with audit) in one transaction.
    ///
    /// - Throws: `.alreadyExists` if the id is enrolled (even with the same key: use the batch mode for
    ///   idempotent re-runs), plus any CSR, policy or storage error. Nothing is recorded on error.
    /// - Parameter beforeRecord: runs after signing and before the registry write; if it throws, nothing is
    ///   recorded. The CLI stages its output file here so that a row never exists without its file.
    public func enroll(
        _ deviceID: DeviceID, csr: [UInt8], csrSource: String, groups: [String], validity: WardenDuration?, now: Date,
        beforeRecord: (IssuedCertificate) throws -> Void = { _ in }
    ) throws -> IssuedCertificate {
        for group in groups { try Self.validateGroup(group) }
        let validated = try ca.validateCSR(csr, deviceID: deviceID, source: csrSource)
        let (issued, outcome) = try issueAndRecord(validated, validity: validity, groups: groups, now: now) { issued, enrollment in
            try beforeRecord(issued)
            return try registry.record([enrollment], actor: actor, now: now)[0]
        }
        switch outcome {
        case .enrolled, .serialCollision:
            return issued
        case .alreadyEnrolledWithSameKey:
            throw WardenError.alreadyExists("device '\(deviceID)' is already enrolled (with this same key)")
        case .conflict(let why):
            throw WardenError.alreadyExists(why)
        }
    }

    /// Issues a certificate for `validated` and hands it to `record`, drawing a fresh serial whenever the registry
    /// reports a collision (126-bit serials make that astronomically rare; the registry's constraint makes it safe).
    /// - Returns: the certificate and the first outcome that is not a serial collision.
    func issueAndRecord(
        _ validated: ValidatedCSR, validity: WardenDuration?, groups: [String], now: Date,
        record: (IssuedCertificate, Enrollment) throws -> Registry.EnrollOutcome
    ) throws -> (IssuedCertificate, Registry.EnrollOutcome) {
        for _ in 0..<4 {
            let issued = try ca.issue(validated, validity: validity, now: now)
            let outcome = try record(issued, Self.enrollment(issued, groups: groups))
            if outcome != .serialCollision { return (issued, outcome) }
        }
        throw WardenError.internal("could not draw a unique serial number after 4 attempts")
    }

    static func enrollment(_ issued: IssuedCertificate, groups: [String]) -> Enrollment {
        Enrollment(
            deviceID: issued.deviceID, groups: groups, serial: issued.serial, der: issued.der,
            notBefore: issued.notBefore, notAfter: issued.notAfter,
            publicKeyFingerprint: issued.publicKeyFingerprint, sha256: issued.sha256Fingerprint)
    }
}
