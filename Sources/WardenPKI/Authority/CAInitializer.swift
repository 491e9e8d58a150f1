import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// Creates a new two-level CA hierarchy: an ECDSA P-256 root (pathLenConstraint 1) and an issuing CA
/// (pathLenConstraint 0), with both keys encrypted at rest.
public enum CAInitializer {
    /// What `ca init` created.
    public struct Result: Sendable {
        /// The root certificate.
        public let root: CertificateSummary
        /// The issuing CA certificate.
        public let issuing: CertificateSummary
    }

    /// Creates the CA under `layout.home`.
    ///
    /// Everything is built in a private staging directory first and then renamed to `ca/` in one step, so an
    /// interrupted or failed init leaves nothing behind, and two concurrent inits cannot both succeed.
    /// - Throws: `.alreadyExists` if a CA is there already (it is never overwritten), `.badInput` for a bad
    ///   organization name or validity, `.storage` for filesystem errors.
    public static func initialize(
        layout: CALayout,
        organization: String,
        rootValidity: WardenDuration,
        issuingValidity: WardenDuration,
        passphrase: [UInt8],
        now: Date,
        keyIterations: Int = EncryptedPKCS8.defaultIterations
    ) throws -> Result {
        guard !organization.isEmpty, organization.count <= 64,
            organization.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw WardenError.badInput("organization name '\(organization)' must be 1 to 64 printable characters")
        }
        guard issuingValidity.seconds < rootValidity.seconds else {
            throw WardenError.badInput(
                "issuing CA validity \(issuingValidity) must be shorter than the root validity \(rootValidity)")
        }
        guard SecureFile.mode(of: layout.caDirectory) == nil else {
            throw WardenError.alreadyExists("a CA already exists in '\(layout.caDirectory)'; refusing to overwrite it")
        }
        try SecureFile.ensureDirectory(layout.home)
        let staging = layout.home + "/.ca-init-\(UInt64.random(in: 0...UInt64.max))"
        try SecureFile.ensureDirectory(staging)
        var committed = false
        defer { if !committed { try? FileManager.default.removeItem(atPath: staging) } }

        let start = Date(timeIntervalSince1970: (now.timeIntervalSince1970 - CertificateAuthority.clockSkewAllowance).rounded(.down))
        let rootKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let rootName = try DistinguishedName {
            OrganizationName(organization)
            CommonName("\(organization) Root CA")
        }
        let rootSKI = SubjectKeyIdentifier(hash: rootKey.publicKey)
        let root = try Certificate(
            version: .v3,
            serialNumber: SerialNumbers.random(),
            publicKey: rootKey.publicKey,
            notValidBefore: start,
            notValidAfter: start.addingTimeInterval(rootValidity.timeInterval),
            issuer: rootName,
            subject: rootName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                rootSKI
            },
            issuerPrivateKey: rootKey
        )

        let issuingKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let issuingName = try DistinguishedName {
            OrganizationName(organization)
            CommonName("\(organization) Issuing CA 1")
        }
        let issuing = try Certificate(
            version: .v3,
            serialNumber: SerialNumbers.random(),
            publicKey: issuingKey.publicKey,
            notValidBefore: start,
            notValidAfter: start.addingTimeInterval(issuingValidity.timeInterval),
            issuer: rootName,
            subject: issuingName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                // digitalSignature lets the issuing CA sign OCSP responses itself (RFC 6960 §4.2.2.2).
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: issuingKey.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: rootSKI.keyIdentifier)
            },
            issuerPrivateKey: rootKey
        )

        let stagedLayout = CALayout(home: staging)
        try SecureFile.ensureDirectory(stagedLayout.caDirectory)
        try SecureFile.writeAtomically(
            Array(try EncryptedPKCS8.seal(rootKey, passphrase: passphrase, iterations: keyIterations).utf8),
            to: stagedLayout.rootKey, mode: 0o600)
        try SecureFile.writeAtomically(
            Array(try EncryptedPKCS8.seal(issuingKey, passphrase: passphrase, iterations: keyIterations).utf8),
            to: stagedLayout.issuingKey, mode: 0o600)
        try SecureFile.writeAtomically(
            Array(PEMInput.pem(try root.derBytes(), label: "CERTIFICATE").utf8), to: stagedLayout.rootCertificate)
        try SecureFile.writeAtomically(
            Array(PEMInput.pem(try issuing.derBytes(), label: "CERTIFICATE").utf8), to: stagedLayout.issuingCertificate)

        // Only the ca/ directory moves into place atomically; the profile is written once the CA exists.
        guard rename(stagedLayout.caDirectory, layout.caDirectory) == 0 else {
            throw WardenError.alreadyExists("a CA already exists in '\(layout.caDirectory)'; refusing to overwrite it")
        }
        committed = true
        try? FileManager.default.removeItem(atPath: staging)
        if SecureFile.mode(of: layout.deviceProfile) == nil {
            try SecureFile.ensureDirectory(layout.profilesDirectory)
            try SecureFile.writeAtomically(try CertificateProfile.builtInDevice.jsonBytes(), to: layout.deviceProfile)
        }
        return Result(root: try CertificateSummary(root), issuing: try CertificateSummary(issuing))
    }
}
