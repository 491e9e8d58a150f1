import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// A certificate and private key for one of Warden's own services (broker TLS, HTTPS API, control client).
public struct ServiceCredential: Sendable {
    /// Leaf followed by the issuing CA certificate, PEM.
    public let chainPEM: String
    /// The leaf alone, PEM.
    public let certificatePEM: String
    /// The private key as an unencrypted PKCS#8 PEM ("PRIVATE KEY"): services such as Mosquitto must read it
    /// unattended, so it is protected by file mode 0600 instead of a passphrase.
    public let privateKeyPEM: String
    /// Serial, lowercase hex.
    public let serial: String
    /// End of validity.
    public let notAfter: Date
}

extension CertificateAuthority {
    /// Issues a certificate for a Warden service with a fresh P-256 key generated here.
    ///
    /// - Parameters:
    ///   - commonName: must be a reserved service name (for example `warden-control`), so that no device can ever
    ///     hold the same MQTT username; device ids can never be reserved names.
    ///   - purposes: `.server` adds serverAuth, `.client` adds clientAuth.
    ///   - dnsNames, ipAddresses: subjectAltName entries (a server certificate needs at least one).
    public func issueServiceCertificate(
        commonName: String, purposes: Set<CertificatePurpose>, dnsNames: [String] = [], ipAddresses: [String] = [],
        validity: WardenDuration, now: Date
    ) throws -> ServiceCredential {
        guard (try? DeviceID.validate(commonName)) == nil, !commonName.isEmpty, commonName.count <= 64,
            commonName.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") })
        else {
            throw WardenError.policy("service name '\(commonName)' must be a reserved name (e.g. warden-control), never a possible device id")
        }
        if purposes.contains(.server) && dnsNames.isEmpty && ipAddresses.isEmpty {
            throw WardenError.badInput("a server certificate needs at least one DNS name or IP address")
        }
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let start = Date(timeIntervalSince1970: (now.timeIntervalSince1970 - Self.clockSkewAllowance).rounded(.down))
        let end = min(
            Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down) + validity.timeInterval),
            issuingCertificate.notValidAfter)
        var subject = DistinguishedName()
        if let organization = organizationName(of: issuingCertificate.subject) {
            subject.append(RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationName, utf8String: organization)))
        }
        subject.append(RelativeDistinguishedName(.init(type: .RDNAttributeType.commonName, utf8String: commonName)))

        var usages: [ExtendedKeyUsage.Usage] = []
        if purposes.contains(.server) { usages.append(.serverAuth) }
        if purposes.contains(.client) { usages.append(.clientAuth) }
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = Self.ipAddressBytes(address) else {
                throw WardenError.badInput("'\(address)' is not an IPv4 or IPv6 address")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
        }
        var extensions: [Certificate.Extension] = [
            try Certificate.Extension(KeyUsage(digitalSignature: true), critical: true),
            try Certificate.Extension(ExtendedKeyUsage(usages), critical: false),
            try Certificate.Extension(SubjectKeyIdentifier(hash: certificateKey.publicKey), critical: false),
            try Certificate.Extension(
                AuthorityKeyIdentifier(keyIdentifier: try Self.subjectKeyIdentifier(of: issuingCertificate)), critical: false),
        ]
        if !names.isEmpty {
            extensions.append(try Certificate.Extension(SubjectAlternativeNames(names), critical: false))
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: SerialNumbers.random(), publicKey: certificateKey.publicKey,
            notValidBefore: start, notValidAfter: end, issuer: issuingCertificate.subject, subject: subject,
            signatureAlgorithm: Self.signatureAlgorithm(for: issuingKey), extensions: try Certificate.Extensions(extensions),
            issuerPrivateKey: issuingKey)
        let leafPEM = PEMInput.pem(try certificate.derBytes(), label: "CERTIFICATE")
        return ServiceCredential(
            chainPEM: leafPEM + PEMInput.pem(try issuingCertificate.derBytes(), label: "CERTIFICATE"),
            certificatePEM: leafPEM,
            privateKeyPEM: key.pemRepresentation + "\n",
            serial: Digest.hex(certificate.serialNumber.bytes),
            notAfter: end)
    }

    /// Network-order bytes of a textual IPv4 or IPv6 address.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
