import Foundation
import WardenCore
import X509

/// Checks a CRL before it is handed to a broker: a corrupt CRL makes Mosquitto turn revocation checking off
/// (fail-open), and an expired one makes it refuse everyone (DESIGN.md, Mosquitto facts).
public enum CRLValidation {
    /// Parses `crlPEM`, verifies its signature with the certificate in `issuerPEM`, and requires it to be in force
    /// now and to stay fresh for at least `minimumRemaining` seconds.
    /// - Returns: the parsed CRL.
    /// - Throws: `.badInput` or `.signatureInvalid` naming `source`.
    @discardableResult
    public static func validate(
        crlPEM: String, issuerPEM: String, now: Date, minimumRemaining: TimeInterval, source: String
    ) throws -> CertificateRevocationList {
        let crl: CertificateRevocationList
        do {
            crl = try CertificateRevocationList(pemEncoded: crlPEM)
        } catch let error as WardenError {
            throw WardenError.badInput("CRL '\(source)' does not parse: \(error.message)")
        }
        let issuers = try PEMInput.certificates(Array(issuerPEM.utf8), what: "issuer certificate for CRL '\(source)'")
        guard let issuer = issuers.first else { throw WardenError.badInput("no issuer certificate for CRL '\(source)'") }
        guard crl.issuer == issuer.subject, crl.isSignatureValid(issuer: issuer) else {
            throw WardenError(.signatureInvalid, "CRL '\(source)' is not signed by \(issuer.subject)")
        }
        guard crl.thisUpdate <= now.addingTimeInterval(CertificateAuthority.clockSkewAllowance) else {
            throw WardenError.badInput("CRL '\(source)' is not valid yet (thisUpdate \(crl.thisUpdate))")
        }
        guard let nextUpdate = crl.nextUpdate, nextUpdate.timeIntervalSince(now) >= minimumRemaining else {
            throw WardenError.badInput("CRL '\(source)' expires too soon (nextUpdate \(crl.nextUpdate.map { "\($0)" } ?? "missing"))")
        }
        return crl
    }
}
