import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// A device certificate issued by Warden, with everything the registry records about it.
public struct IssuedCertificate: Sendable {
    /// The device.
    public let deviceID: DeviceID
    /// Serial number, lowercase hex (unique per CA; the registry enforces it).
    public let serial: String
    /// DER of the leaf certificate.
    public let der: [UInt8]
    /// PEM of the leaf followed by the issuing CA certificate: what a device installs (encoded when asked for).
    public var chainPEM: String { PEMInput.pem(der, label: "CERTIFICATE") + issuingCertificatePEM }
    let issuingCertificatePEM: String
    /// Start of validity.
    public let notBefore: Date
    /// End of validity.
    public let notAfter: Date
    /// SHA-256 of the subject public key bits, as in ``ValidatedCSR/publicKeyFingerprint``.
    public let publicKeyFingerprint: String
    /// SHA-256 of the DER certificate.
    public let sha256Fingerprint: String
}

/// The day-to-day signing authority: the issuing CA certificate and key, the root certificate (public part
/// only) and the device profile.
///
/// Loading it never touches the root key, so the root key can live offline after `ca init`.
public struct CertificateAuthority: Sendable {
    /// The files of this authority.
    public let layout: CALayout
    /// The device profile in force.
    public let profile: CertificateProfile
    let issuingCertificate: Certificate
    let rootCertificate: Certificate
    let issuingKey: Certificate.PrivateKey
    /// The issuing certificate as PEM and its key identifier, computed once: every issuance needs them.
    let issuingCertificatePEM: String
    let issuingKeyIdentifier: ArraySlice<UInt8>
    /// The DER pieces every device certificate of this CA shares, encoded once.
    let deviceParts: DeviceCertificateParts

    /// Backdating of notBefore, to tolerate device clocks that run a little slow.
    public static let clockSkewAllowance: TimeInterval = 300

    /// Loads the issuing CA from `layout`, decrypting the issuing key with `passphrase`.
    /// - Throws: `.notFound` if there is no CA, `.wrongPassphrase`, or `.badInput` for corrupted files.
    public static func load(layout: CALayout, passphrase: [UInt8]) throws -> CertificateAuthority {
        try Locked.load(layout: layout).unlock(passphrase: passphrase)
    }

    /// The issuing CA before its key is decrypted: certificates and device profile only.
    ///
    /// Decrypting the issuing key costs a deliberate ~80 ms of PBKDF2 (``EncryptedPKCS8/defaultIterations``). A batch
    /// checks CSRs, which needs no private key, with a `Locked` authority while ``unlock(passphrase:)`` runs on another
    /// thread.
    public struct Locked: Sendable {
        /// The files of this authority.
        public let layout: CALayout
        /// The device profile in force.
        public let profile: CertificateProfile
        let issuingCertificate: Certificate
        let rootCertificate: Certificate

        /// Reads the CA certificates and the device profile of `layout`.
        /// - Throws: `.notFound` if there is no CA, `.badInput` for corrupted files.
        public static func load(layout: CALayout) throws -> Locked {
            guard SecureFile.mode(of: layout.issuingCertificate) != nil else {
                throw WardenError.notFound("no CA in '\(layout.home)'; run 'warden ca init' first")
            }
            let issuing = try CertificateAuthority.loadCertificate(layout.issuingCertificate, what: "issuing CA certificate")
            let root = try CertificateAuthority.loadCertificate(layout.rootCertificate, what: "root CA certificate")
            let profile: CertificateProfile
            if SecureFile.mode(of: layout.deviceProfile) != nil {
                profile = try CertificateProfile.parse(
                    json: try SecureFile.read(layout.deviceProfile, what: "device profile"), source: layout.deviceProfile)
            } else {
                profile = .builtInDevice
            }
            return Locked(layout: layout, profile: profile, issuingCertificate: issuing, rootCertificate: root)
        }

        /// Checks a CSR for `deviceID` against the device profile (see ``CertificateAuthority/validateCSR(_:deviceID:source:)``).
        public func validateCSR(_ bytes: [UInt8], deviceID: DeviceID, source: String) throws -> ValidatedCSR {
            try CSRValidator.validate(bytes, deviceID: deviceID, profile: profile, source: source)
        }

        /// Decrypts the issuing key with `passphrase` and checks that it belongs to the issuing certificate.
        /// - Throws: `.wrongPassphrase`, or `.badInput` for a corrupted or mismatched key file.
        public func unlock(passphrase: [UInt8]) throws -> CertificateAuthority {
            let keyPEM = try SecureFile.readText(layout.issuingKey, what: "issuing CA key")
            let key = try EncryptedPKCS8.openPrivateKey(pem: keyPEM, passphrase: passphrase)
            guard key.publicKey == issuingCertificate.publicKey else {
                throw WardenError.badInput("issuing CA key '\(layout.issuingKey)' does not match '\(layout.issuingCertificate)'")
            }
            let keyIdentifier = try CertificateAuthority.subjectKeyIdentifier(of: issuingCertificate)
            return CertificateAuthority(
                layout: layout, profile: profile, issuingCertificate: issuingCertificate, rootCertificate: rootCertificate,
                issuingKey: key, issuingCertificatePEM: PEMInput.pem(try issuingCertificate.derBytes(), label: "CERTIFICATE"),
                issuingKeyIdentifier: keyIdentifier,
                deviceParts: try DeviceCertificateParts(
                    profile: profile, issuer: issuingCertificate.subject, issuerKeyIdentifier: keyIdentifier,
                    signatureAlgorithm: CertificateAuthority.signatureAlgorithm(for: key)))
        }
    }

    /// Summaries of the root and issuing certificates, read without any key.
    public static func publicSummaries(layout: CALayout) throws -> (root: CertificateSummary, issuing: CertificateSummary) {
        let (root, issuing) = try publicCertificates(layout: layout)
        return (try CertificateSummary(root), try CertificateSummary(issuing))
    }

    /// The trust bundle (issuing CA then root, PEM), read without any key.
    public static func bundlePEM(layout: CALayout) throws -> String {
        let (root, issuing) = try publicCertificates(layout: layout)
        return PEMInput.pem(try issuing.derBytes(), label: "CERTIFICATE") + PEMInput.pem(try root.derBytes(), label: "CERTIFICATE")
    }

    /// A leaf's chain PEM (leaf + issuing CA), read without any key.
    public static func chainPEM(leafDER: [UInt8], layout: CALayout) throws -> String {
        let (_, issuing) = try publicCertificates(layout: layout)
        return PEMInput.pem(leafDER, label: "CERTIFICATE") + PEMInput.pem(try issuing.derBytes(), label: "CERTIFICATE")
    }

    /// The root and issuing certificates of the CA in `layout`, or `.notFound` telling the user to run `ca init`.
    static func publicCertificates(layout: CALayout) throws -> (root: Certificate, issuing: Certificate) {
        guard SecureFile.mode(of: layout.issuingCertificate) != nil else {
            throw WardenError.notFound("no CA in '\(layout.home)'; run 'warden ca init' first")
        }
        return (
            try loadCertificate(layout.rootCertificate, what: "root CA certificate"),
            try loadCertificate(layout.issuingCertificate, what: "issuing CA certificate")
        )
    }

    static func loadCertificate(_ path: String, what: String) throws -> Certificate {
        let certificates = try PEMInput.certificates(try SecureFile.read(path, what: what), what: "\(what) '\(path)'")
        guard certificates.count == 1, let certificate = certificates.first else {
            throw WardenError.badInput("\(what) '\(path)' must hold exactly one certificate")
        }
        return certificate
    }

    /// The trust bundle, issuing CA then root, PEM.
    public var bundlePEM: String {
        get throws {
            PEMInput.pem(try issuingCertificate.derBytes(), label: "CERTIFICATE")
                + PEMInput.pem(try rootCertificate.derBytes(), label: "CERTIFICATE")
        }
    }

    /// The issuing CA certificate, PEM.
    public var issuingPEM: String { get throws { issuingCertificatePEM } }

    /// Checks a CSR for `deviceID` against this authority's device profile.
    public func validateCSR(_ bytes: [UInt8], deviceID: DeviceID, source: String) throws -> ValidatedCSR {
        try CSRValidator.validate(bytes, deviceID: deviceID, profile: profile, source: source)
    }

    /// Resolves the validity an operator asked for against the profile's default and maximum.
    public func resolveValidity(_ requested: WardenDuration?) throws -> WardenDuration {
        let validity = try requested ?? WardenDuration(parsing: profile.defaultValidity)
        let maximum = try WardenDuration(parsing: profile.maximumValidity)
        guard validity.seconds <= maximum.seconds else {
            throw WardenError.policy("validity \(validity) exceeds the device profile's maximum of \(maximum)")
        }
        return validity
    }

    /// Issues the device certificate for `csr`, following the device profile (RFC 5280 §4.1, §4.2).
    ///
    /// The serial is fresh and random on every call; a caller that hits the registry's uniqueness constraint
    /// simply calls again.
    public func issue(_ csr: ValidatedCSR, validity requested: WardenDuration?, now: Date) throws -> IssuedCertificate {
        try issue(csr, template: try deviceTemplate(validity: requested, now: now))
    }

    /// The parts of the device certificates issued at `now` with `requested` validity that are the same for every
    /// device: build it once per batch and pass it to ``issue(_:template:)`` for each device.
    /// - Throws: `.policy` if the validity exceeds the profile's maximum or would outlive the issuing CA.
    public func deviceTemplate(validity requested: WardenDuration?, now: Date) throws -> DeviceCertificateTemplate {
        let validity = try resolveValidity(requested)
        let start = Date(timeIntervalSince1970: (now.timeIntervalSince1970 - Self.clockSkewAllowance).rounded(.down))
        let end = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down) + validity.timeInterval)
        guard end <= issuingCertificate.notValidAfter else {
            throw WardenError.policy(
                "validity \(validity) would outlive the issuing CA, which expires \(ISO8601DateFormatter().string(from: issuingCertificate.notValidAfter))")
        }
        return DeviceCertificateTemplate(parts: deviceParts, notBefore: start, notAfter: end)
    }

    /// Issues the device certificate for `csr` from a template made by this authority's
    /// ``deviceTemplate(validity:now:)``, with a fresh random serial.
    public func issue(_ csr: ValidatedCSR, template: DeviceCertificateTemplate) throws -> IssuedCertificate {
        guard template.parts.authorityKeyIdentifier == deviceParts.authorityKeyIdentifier else {
            throw WardenError.internal("a device certificate template of another CA was used")
        }
        return try issue(csr, template: template, serial: SerialNumbers.randomBytes())
    }

    /// Issues with a given serial (``SerialNumbers`` bytes); tests compare the result with swift-certificates' builder.
    func issue(_ csr: ValidatedCSR, template: DeviceCertificateTemplate, serial: [UInt8]) throws -> IssuedCertificate {
        let keyIdentifier = Array(Insecure.SHA1.hash(data: csr.subjectPublicKeyInfo[csr.subjectPublicKeyBits]))
        let tbs = try template.tbsCertificate(
            serial: serial, deviceID: csr.deviceID, subjectPublicKeyInfo: csr.subjectPublicKeyInfo, keyIdentifier: keyIdentifier)
        let signature = try issuingKey.sign(bytes: tbs, signatureAlgorithm: deviceParts.signatureAlgorithm)
        let der = template.certificate(tbs: tbs, signature: signature.rawRepresentation)
        return IssuedCertificate(
            deviceID: csr.deviceID,
            serial: Digest.hex(serial),
            der: der,
            issuingCertificatePEM: issuingCertificatePEM,
            notBefore: template.notBefore,
            notAfter: template.notAfter,
            publicKeyFingerprint: csr.publicKeyFingerprint,
            sha256Fingerprint: Digest.hex(Digest.sha256(der))
        )
    }

    static func subjectKeyIdentifier(of certificate: Certificate) throws -> ArraySlice<UInt8> {
        if let ski = try certificate.extensions.subjectKeyIdentifier { return ski.keyIdentifier }
        return SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
    }

    static func signatureAlgorithm(for key: Certificate.PrivateKey) -> Certificate.SignatureAlgorithm {
        if P384.Signing.PublicKey(key.publicKey) != nil { return .ecdsaWithSHA384 }
        if Curve25519.Signing.PublicKey(key.publicKey) != nil { return .ed25519 }
        return .ecdsaWithSHA256
    }

    func organizationName(of name: DistinguishedName) -> String? { Self.organizationName(of: name) }

    static func organizationName(of name: DistinguishedName) -> String? {
        for rdn in name {
            for attribute in rdn where attribute.type == .RDNAttributeType.organizationName {
                return String(attribute.value)
            }
        }
        return nil
    }

    /// CRLDistributionPoints (RFC 5280 §4.2.1.13) with one fullName URI. swift-certificates has no type for it,
    /// so it is encoded here: SEQUENCE { SEQUENCE { [0] { [0] { [6] uri } } } }.
    static func crlDistributionPoint(_ url: String) -> Certificate.Extension {
        let uri = DERBytes.tlv(0x86, Array(url.utf8))
        let fullName = DERBytes.tlv(0xA0, uri)
        let distributionPointName = DERBytes.tlv(0xA0, fullName)
        let value = DERBytes.tlv(0x30, DERBytes.tlv(0x30, distributionPointName))
        return Certificate.Extension(oid: [2, 5, 29, 31], critical: false, value: value[...])
    }
}

/// Minimal DER TLV writer for structures swift-certificates does not model.
enum DERBytes {
    /// Tag, definite length (X.690 §8.1.3), contents.
    static func tlv(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [tag]
        let length = contents.count
        if length < 0x80 {
            out.append(UInt8(length))
        } else {
            var lengthBytes: [UInt8] = []
            var remaining = length
            while remaining > 0 {
                lengthBytes.insert(UInt8(remaining & 0xFF), at: 0)
                remaining >>= 8
            }
            out.append(0x80 | UInt8(lengthBytes.count))
            out.append(contentsOf: lengthBytes)
        }
        return out + contents
    }

    /// The DER encoding of `element`.
    static func encode(_ element: some DERSerializable) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(element)
        return serializer.serializedBytes
    }

    /// Bytes taken by a tag and the definite length `length`.
    static func headerLength(_ length: Int) -> Int {
        length < 0x80 ? 2 : length < 0x100 ? 3 : length < 0x1_0000 ? 4 : length < 0x100_0000 ? 5 : 6
    }

    /// Appends a tag and the definite length `length` (X.690 §8.1.3) to `out`.
    static func appendHeader(_ tag: UInt8, _ length: Int, to out: inout [UInt8]) {
        out.append(tag)
        if length < 0x80 {
            out.append(UInt8(length))
            return
        }
        let count = headerLength(length) - 2
        out.append(0x80 | UInt8(count))
        for index in stride(from: count - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: length >> (8 * index))) }
    }
}
