import Foundation
import SwiftASN1
import X509

/// A VerifierPolicy (swift-certificates) that checks revocation against supplied CRLs (RFC 5280 §6.3).
///
/// For the leaf, and for every intermediate too when `checkAll` is set (the trust anchor is never checked), the
/// policy follows the CRL processing of RFC 5280 §6.3.3 for complete, direct CRLs:
/// - it selects the CRLs whose issuer name equals the certificate's issuer (§6.3.3 (b)) and whose signature
///   verifies with the public key of the next certificate in the chain (§6.3.3 (f), (g)); without one the chain
///   fails, so a missing CRL never means "not revoked";
/// - of those, it uses the newest one already in force (thisUpdate ≤ validation time, highest CRL number);
/// - it fails if that CRL's nextUpdate is before the validation time or missing (§6.3.3 (a)(2): the CRL is stale);
/// - it fails if the certificate's serial number is listed (§6.3.3 (i)), whatever the reason, certificateHold
///   included.
///
/// Delta CRLs, indirect CRLs and issuing distribution points are refused by the CRL parser already, so every CRL
/// here is complete in scope. Failure reasons are whole sentences meant for an operator.
struct CRLRevocationPolicy: VerifierPolicy {
    /// This policy processes no certificate extension.
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = []

    /// The CRLs to consult.
    let crls: [CertificateRevocationList]
    /// The time at which revocation status is judged.
    let validationTime: Date
    /// Whether intermediates are checked as well as the leaf.
    let checkAll: Bool

    /// - Parameters:
    ///   - crls: the candidate CRLs; unrelated or forged ones are ignored.
    ///   - validationTime: the time at which revocation status is judged.
    ///   - checkAll: also check the intermediate CAs (not only the leaf).
    init(crls: [CertificateRevocationList], validationTime: Date, checkAll: Bool = false) {
        self.crls = crls
        self.validationTime = validationTime
        self.checkAll = checkAll
    }

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        let certificates = Array(chain)
        // Every certificate but the trust anchor has an issuer in the chain; the leaf alone unless checkAll.
        let checked = checkAll ? max(certificates.count - 1, 0) : min(1, certificates.count - 1)
        for index in 0..<checked {
            if case .failsToMeetPolicy(let reason) = check(certificates[index], issuedBy: certificates[index + 1]) {
                return .failsToMeetPolicy(reason: reason)
            }
        }
        return .meetsPolicy
    }

    /// The RFC 5280 §6.3.3 verdict for one certificate.
    func check(_ certificate: Certificate, issuedBy issuer: Certificate) -> PolicyEvaluationResult {
        let time = validationTime
        let subject = certificate.subject
        let issuerName = certificate.issuer
        let candidates = crls.filter { $0.issuer == issuerName && $0.isSignatureValid(issuer: issuer) }
        guard !candidates.isEmpty else {
            return .failsToMeetPolicy(
                reason: "No CRL for issuer \(issuerName) is available (none was signed by that CA), so the revocation status of \(subject) is unknown."
            )
        }
        let inForce = candidates.filter { $0.thisUpdate <= time }
        guard
            let crl = inForce.max(by: { a, b in
                (a.thisUpdate, a.crlNumber ?? 0) < (b.thisUpdate, b.crlNumber ?? 0)
            })
        else {
            let earliest = candidates.map(\.thisUpdate).min()!
            return .failsToMeetPolicy(
                reason: "The CRL for issuer \(issuerName) is not valid yet: it was issued at \(earliest), after the validation time \(time)."
            )
        }
        guard let nextUpdate = crl.nextUpdate else {
            return .failsToMeetPolicy(
                reason: "The CRL for issuer \(issuerName) has no nextUpdate, so its freshness cannot be judged."
            )
        }
        guard time <= nextUpdate else {
            return .failsToMeetPolicy(
                reason: "The CRL for issuer \(issuerName) expired: its nextUpdate \(nextUpdate) is before the validation time \(time)."
            )
        }
        let serial = Array(certificate.serialNumber.bytes)
        if let entry = crl.entry(forSerial: serial) {
            let why = entry.reason.map { " (\($0.name))" } ?? ""
            let number = crl.crlNumber.map { " number \($0)" } ?? ""
            return .failsToMeetPolicy(
                reason: "The certificate serial \(CertificateRevocationList.hex(serial)) of \(subject) was revoked\(why) at \(entry.revocationDate), according to CRL\(number) of \(issuerName)."
            )
        }
        return .meetsPolicy
    }
}
