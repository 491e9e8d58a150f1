import Foundation
import WardenCore
import WardenPKI
import WardenStore

extension Authority {
    /// The same authority acting for someone else, e.g. the operator behind an admin API request, so the audit log
    /// records who asked.
    public func acting(as actor: String) -> Authority {
        Authority(home: home, registry: registry, ca: ca, actor: actor)
    }

    /// Default validity of an operator certificate.
    public static let defaultOperatorValidity = WardenDuration(seconds: 90 * 86_400)

    /// Issues an operator certificate carrying `role` for the key in `csr` and records it (audited `operator.issue`).
    /// The caller checks that the role exists in the policies in force.
    /// - Parameter beforeRecord: runs after signing and before the registry write (the CLI stages its output file).
    public func issueOperator(
        name: String, role: String, csr: [UInt8], csrSource: String, validity: WardenDuration?, now: Date,
        beforeRecord: (OperatorCertificate) throws -> Void = { _ in }
    ) throws -> OperatorCertificate {
        for _ in 0..<4 {
            let issued = try ca.issueOperatorCertificate(
                csr: csr, csrSource: csrSource, name: name, role: role, validity: validity ?? Self.defaultOperatorValidity, now: now)
            try beforeRecord(issued)
            do {
                try registry.recordOperatorCertificate(
                    name: issued.commonName, role: role, serial: issued.serial, der: issued.der, notBefore: issued.notBefore,
                    notAfter: issued.notAfter, actor: actor, now: now)
                return issued
            } catch let error as WardenError where error.code == .alreadyExists {
                continue  // serial collision: draw a fresh serial
            }
        }
        throw WardenError.internal("could not draw a unique serial number after 4 attempts")
    }

    /// Revokes every certificate of operator `name` and publishes a fresh CRL listing them, in one step (as
    /// ``revoke(_:reason:now:)`` does for a device). The HTTP API refuses the certificates at once (it reads the
    /// registry on every handshake and request).
    public func revokeOperator(name: String, reason: RevocationReason, now: Date) throws -> RevocationResult {
        let commonName = try OperatorNaming.commonName(for: name)
        var staged: String?
        do {
            let result = try registry.revokeOperator(name: commonName, reasonCode: reason.rawValue, actor: actor, now: now) { number, entries in
                staged = try stageCRL(number: number, entries: entries, now: now, validity: Self.defaultCRLValidity)
            }
            if let staged { try SecureFile.commit(staged: staged, to: home.ca.crl) }
            return RevocationResult(serials: result.serials, crlNumber: result.crlNumber, crlPath: home.ca.crl)
        } catch {
            if let staged { SecureFile.discard(staged: staged) }
            throw error
        }
    }
}
