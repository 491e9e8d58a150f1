import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

#if canImport(Glibc)
import Glibc
#endif

/// The DER pieces that every device certificate of one issuing CA shares (RFC 5280 §4.1): the signature algorithm,
/// the issuer name, the subject's organization and the constant extensions, encoded once when the CA is unlocked.
struct DeviceCertificateParts: Sendable {
    /// The issuing key's signature algorithm.
    let signatureAlgorithm: Certificate.SignatureAlgorithm
    /// AlgorithmIdentifier of ``signatureAlgorithm``, DER (in the TBSCertificate and after it).
    let algorithmIdentifier: [UInt8]
    /// The issuer Name (the issuing CA's subject), DER.
    let issuer: [UInt8]
    /// The subject's organization RDN (a SET), DER, copied from the issuing CA; empty when it has none.
    let organizationRDN: [UInt8]
    /// KeyUsage (critical) and ExtendedKeyUsage, DER: the extensions before the SubjectKeyIdentifier.
    let extensionsBeforeKeyIdentifier: [UInt8]
    /// AuthorityKeyIdentifier extension, DER: between the SubjectKeyIdentifier and the subjectAltName.
    let authorityKeyIdentifier: [UInt8]
    /// CRLDistributionPoints extension, DER, or empty: the last extension.
    let trailingExtensions: [UInt8]
    /// DNS suffix of the subjectAltName `<device id>.<suffix>`, when the profile asks for one.
    let dnsSuffix: String?

    /// Encodes the constant pieces for `profile`, issued by the CA named `issuer` with key identifier
    /// `issuerKeyIdentifier`, signing with `signatureAlgorithm`.
    init(
        profile: CertificateProfile, issuer: DistinguishedName, issuerKeyIdentifier: ArraySlice<UInt8>,
        signatureAlgorithm: Certificate.SignatureAlgorithm
    ) throws {
        self.signatureAlgorithm = signatureAlgorithm
        switch signatureAlgorithm {
        case .ecdsaWithSHA256: algorithmIdentifier = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
        case .ecdsaWithSHA384: algorithmIdentifier = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]
        case .ed25519: algorithmIdentifier = [0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70]
        default: throw WardenError.badInput("the issuing CA's key uses \(signatureAlgorithm), which Warden does not issue with")
        }
        self.issuer = try DERBytes.encode(issuer)
        if let organization = CertificateAuthority.organizationName(of: issuer) {
            let name = DistinguishedName([
                RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationName, utf8String: organization))
            ])
            let encoded = try DERBytes.encode(name)
            organizationRDN = Array(encoded[(encoded[1] < 0x80 ? 2 : 2 + Int(encoded[1] & 0x7F))...])
        } else {
            organizationRDN = []
        }

        var usage = KeyUsage()
        for name in profile.keyUsage {
            switch name {
            case "digitalSignature": usage.digitalSignature = true
            case "keyAgreement": usage.keyAgreement = true
            default: throw WardenError.badInput("device profile: keyUsage '\(name)' is not supported")
            }
        }
        let ekus: [ExtendedKeyUsage.Usage] = try profile.extendedKeyUsage.map { name in
            switch name {
            case "clientAuth": return .clientAuth
            case "serverAuth": return .serverAuth
            default: throw WardenError.badInput("device profile: extendedKeyUsage '\(name)' is not supported")
            }
        }
        extensionsBeforeKeyIdentifier =
            try DERBytes.encode(try Certificate.Extension(usage, critical: true))
            + DERBytes.encode(try Certificate.Extension(ExtendedKeyUsage(ekus), critical: false))
        authorityKeyIdentifier = try DERBytes.encode(
            try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: issuerKeyIdentifier), critical: false))
        trailingExtensions =
            try profile.crlDistributionPoint.map {
                try DERBytes.encode(CertificateAuthority.crlDistributionPoint($0))
            } ?? []
        dnsSuffix = profile.subjectAltName == .dns ? profile.dnsSuffix : nil
    }
}

/// Everything about the device certificates one CA issues at one moment that is the same for every device, so that
/// issuing a certificate only encodes what varies: the serial number, the subject CN, the subject public key, its
/// key identifier and (with a DNS profile) the subjectAltName. Made by
/// ``CertificateAuthority/deviceTemplate(validity:now:)``.
///
/// The DER is byte for byte what swift-certificates' `Certificate` builder produces for the same inputs (a test
/// builds both and compares them), without re-encoding the constant parts and the subject key for every device.
public struct DeviceCertificateTemplate: Sendable {
    /// Start of validity (RFC 5280 §4.1.2.5).
    public let notBefore: Date
    /// End of validity.
    public let notAfter: Date
    let parts: DeviceCertificateParts
    /// The issuer Name then the Validity, DER: they follow the signature algorithm in the TBSCertificate.
    let issuerAndValidity: [UInt8]

    /// X.509 v3: `[0] EXPLICIT INTEGER 2`.
    static let version: [UInt8] = [0xA0, 0x03, 0x02, 0x01, 0x02]

    init(parts: DeviceCertificateParts, notBefore: Date, notAfter: Date) {
        self.parts = parts
        self.notBefore = notBefore
        self.notAfter = notAfter
        var validity = Self.time(notBefore)
        validity += Self.time(notAfter)
        issuerAndValidity = parts.issuer + DERBytes.tlv(0x30, validity)
    }

    /// RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ` for 1950–2049, GeneralizedTime `YYYYMMDDHHMMSSZ` otherwise.
    static func time(_ date: Date) -> [UInt8] {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        var digits: [UInt8] = []
        func append(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                digits.append(0x30 + UInt8((value / divisor) % 10))
                divisor /= 10
            }
        }
        let utc = (1950..<2050).contains(year)
        if utc { append(year % 100, 2) } else { append(year, 4) }
        for value in [Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)] {
            append(value, 2)
        }
        digits.append(0x5A)  // Z
        return DERBytes.tlv(utc ? 0x17 : 0x18, digits)
    }

    /// Encodes the TBSCertificate of one device (RFC 5280 §4.1.2).
    /// - Parameters:
    ///   - serial: the serial's big-endian bytes, positive and minimal (``SerialNumbers``).
    ///   - subjectPublicKeyInfo: the device's SubjectPublicKeyInfo, DER, in canonical form.
    ///   - keyIdentifier: the SubjectKeyIdentifier (RFC 5280 §4.2.1.2 method 1).
    func tbsCertificate(
        serial: [UInt8], deviceID: DeviceID, subjectPublicKeyInfo: [UInt8], keyIdentifier: [UInt8]
    ) throws -> [UInt8] {
        // subject: SEQUENCE { [SET { O }], SET { SEQUENCE { OID commonName, UTF8String id } } }
        let cn = Array(deviceID.rawValue.utf8)
        let attribute = 5 + DERBytes.headerLength(cn.count) + cn.count
        let commonNameRDN = DERBytes.headerLength(attribute) + attribute
        let subject = parts.organizationRDN.count + DERBytes.headerLength(commonNameRDN) + commonNameRDN

        // extensions, in the builder's order: KU, EKU, SKI, AKI, [SAN], [CRL DP]
        let subjectKeyIdentifier = DERBytes.tlv(
            0x30, [0x06, 0x03, 0x55, 0x1D, 0x0E] + DERBytes.tlv(0x04, DERBytes.tlv(0x04, keyIdentifier)))
        var subjectAltName: [UInt8] = []
        if let suffix = parts.dnsSuffix {
            let names = SubjectAlternativeNames([.dnsName("\(deviceID.rawValue).\(suffix)")])
            subjectAltName = try DERBytes.encode(try Certificate.Extension(names, critical: false))
        }
        let extensions = parts.extensionsBeforeKeyIdentifier.count + subjectKeyIdentifier.count
            + parts.authorityKeyIdentifier.count + subjectAltName.count + parts.trailingExtensions.count
        let extensionsField = DERBytes.headerLength(extensions) + extensions

        let contents = Self.version.count + DERBytes.headerLength(serial.count) + serial.count
            + parts.algorithmIdentifier.count + issuerAndValidity.count + DERBytes.headerLength(subject) + subject
            + subjectPublicKeyInfo.count + DERBytes.headerLength(extensionsField) + extensionsField
        var out: [UInt8] = []
        out.reserveCapacity(DERBytes.headerLength(contents) + contents)
        DERBytes.appendHeader(0x30, contents, to: &out)
        out.append(contentsOf: Self.version)
        DERBytes.appendHeader(0x02, serial.count, to: &out)
        out.append(contentsOf: serial)
        out.append(contentsOf: parts.algorithmIdentifier)
        out.append(contentsOf: issuerAndValidity)
        DERBytes.appendHeader(0x30, subject, to: &out)
        out.append(contentsOf: parts.organizationRDN)
        DERBytes.appendHeader(0x31, commonNameRDN, to: &out)
        DERBytes.appendHeader(0x30, attribute, to: &out)
        out.append(contentsOf: [0x06, 0x03, 0x55, 0x04, 0x03])
        DERBytes.appendHeader(0x0C, cn.count, to: &out)
        out.append(contentsOf: cn)
        out.append(contentsOf: subjectPublicKeyInfo)
        DERBytes.appendHeader(0xA3, extensionsField, to: &out)
        DERBytes.appendHeader(0x30, extensions, to: &out)
        out.append(contentsOf: parts.extensionsBeforeKeyIdentifier)
        out.append(contentsOf: subjectKeyIdentifier)
        out.append(contentsOf: parts.authorityKeyIdentifier)
        out.append(contentsOf: subjectAltName)
        out.append(contentsOf: parts.trailingExtensions)
        return out
    }

    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }`.
    func certificate(tbs: [UInt8], signature: [UInt8]) -> [UInt8] {
        let bitString = 1 + signature.count
        let contents = tbs.count + parts.algorithmIdentifier.count + DERBytes.headerLength(bitString) + bitString
        var out: [UInt8] = []
        out.reserveCapacity(DERBytes.headerLength(contents) + contents)
        DERBytes.appendHeader(0x30, contents, to: &out)
        out.append(contentsOf: tbs)
        out.append(contentsOf: parts.algorithmIdentifier)
        DERBytes.appendHeader(0x03, bitString, to: &out)
        out.append(0)
        out.append(contentsOf: signature)
        return out
    }
}
