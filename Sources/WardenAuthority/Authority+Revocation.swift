import Foundation
import WardenCore
import WardenPKI
import WardenStore

extension Authority {
    /// What `revoke` did.
    public struct RevocationResult: Sendable {
        /// Serials put on the CRL.
        public let serials: [String]
        /// Number of the CRL that now lists them.
        public let crlNumber: UInt64
        /// Where that CRL was written.
        public let crlPath: String
    }

    /// Revokes a device: the registry row, its certificates, a fresh signed CRL and the audit event, in one step.
    ///
    /// The CRL is built and staged next to `ca/crl.pem` inside the registry transaction and renamed into place
    /// right after the commit; if signing or staging fails, the revocation is rolled back. A crash between the
    /// commit and the rename leaves the previous CRL in place; the next `warden crl` (or revoke) rebuilds it
    /// from the registry, which stays the source of truth.
    public func revoke(_ deviceID: DeviceID, reason: RevocationReason, now: Date) throws -> RevocationResult {
        var staged: String?
        do {
            let result = try registry.revoke(deviceID, reasonCode: reason.rawValue, actor: actor, now: now) { number, entries in
                staged = try stageCRL(number: number, entries: entries, now: now, validity: Self.defaultCRLValidity)
            }
            if let staged { try SecureFile.commit(staged: staged, to: home.ca.crl) }
            return RevocationResult(serials: result.serials, crlNumber: result.crlNumber, crlPath: home.ca.crl)
        } catch {
            if let staged { SecureFile.discard(staged: staged) }
            throw error
        }
    }

    /// Issues a fresh CRL (next CRL number, thisUpdate now, nextUpdate now + `validity`), writes it to
    /// `ca/crl.pem` and returns it.
    public func issueCRL(now: Date, validity: WardenDuration = defaultCRLValidity) throws -> CertificateRevocationList {
        var staged: String?
        var crl: CertificateRevocationList?
        do {
            _ = try registry.issueCRL(actor: actor, now: now) { number, entries in
                crl = try signCRL(number: number, entries: entries, now: now, validity: validity)
                staged = try SecureFile.stage(Array(crl!.pemEncoded.utf8), besides: home.ca.crl)
            }
            if let staged { try SecureFile.commit(staged: staged, to: home.ca.crl) }
        } catch {
            if let staged { SecureFile.discard(staged: staged) }
            throw error
        }
        guard let crl else { throw WardenError.internal("CRL was not built") }
        return crl
    }

    func stageCRL(number: UInt64, entries: [RevocationEntry], now: Date, validity: WardenDuration) throws -> String {
        let crl = try signCRL(number: number, entries: entries, now: now, validity: validity)
        return try SecureFile.stage(Array(crl.pemEncoded.utf8), besides: home.ca.crl)
    }

    func signCRL(number: UInt64, entries: [RevocationEntry], now: Date, validity: WardenDuration) throws -> CertificateRevocationList {
        let revoked = try entries.map { entry in
            guard let serial = Digest.bytes(fromHex: entry.serial) else {
                throw WardenError.internal("registry holds a malformed serial '\(entry.serial)'")
            }
            return RevokedCertificate(
                serialNumber: serial, revocationDate: entry.revokedAt, reason: RevocationReason(rawValue: entry.reasonCode))
        }
        let thisUpdate = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        return try ca.signCRL(
            number: number, revoked: revoked, thisUpdate: thisUpdate, nextUpdate: thisUpdate.addingTimeInterval(validity.timeInterval))
    }
}
