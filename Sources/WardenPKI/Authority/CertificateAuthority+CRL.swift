import Foundation

extension CertificateAuthority {
    /// Signs a CRL for the issuing CA (RFC 5280 §5) with the given number, entries and update times.
    public func signCRL(
        number: UInt64, revoked: [RevokedCertificate], thisUpdate: Date, nextUpdate: Date
    ) throws -> CertificateRevocationList {
        try CertificateRevocationList.sign(
            issuer: issuingCertificate, issuerKey: issuingKey, crlNumber: number, thisUpdate: thisUpdate,
            nextUpdate: nextUpdate, revoked: revoked)
    }
}
