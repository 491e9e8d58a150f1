import Foundation

extension CertificateAuthority {
    /// An OCSP responder that answers for this issuing CA and signs with its key (RFC 6960 §4.2.2.2: the CA
    /// that issued the certificates signs the responses itself, so no delegated responder certificate exists).
    /// - Parameter validity: nextUpdate − thisUpdate of each response, clamped to 1 minute … 1 hour.
    public func ocspResponder(validity: TimeInterval = OCSPResponder.maximumValidity) -> OCSPResponder {
        OCSPResponder(issuer: issuingCertificate, issuerKey: issuingKey, validity: validity)
    }
}
