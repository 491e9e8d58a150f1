import Foundation
import SwiftASN1
import WardenCore
import X509

/// An operator (administrator) client certificate issued by Warden.
public struct OperatorCertificate: Sendable {
    /// The operator's CN, `warden-op-<name>`.
    public let commonName: String
    /// The role it carries.
    public let role: String
    /// Serial, lowercase hex.
    public let serial: String
    /// DER of the certificate.
    public let der: [UInt8]
    /// Leaf followed by the issuing CA, PEM.
    public let chainPEM: String
    /// Validity start.
    public let notBefore: Date
    /// Validity end.
    public let notAfter: Date
}

/// How operator certificates name their holder and carry their role.
///
/// - CN `warden-op-<name>`: the `warden-` prefix is reserved, so no device id can ever equal an operator's CN (and
///   Mosquitto, which takes the CN as the username, can never confuse the two).
/// - Role: one subject `organizationalUnitName` attribute `role:<role>`. Device certificates never carry an OU: their
///   subject is built by Warden (O + CN), never copied from the CSR, so a device CSR can never obtain a role.
public enum OperatorNaming {
    /// The CN prefix of every operator certificate.
    public static let prefix = "warden-op-"
    /// The OU prefix that carries the role.
    public static let rolePrefix = "role:"

    /// The CN for operator `name` (`alice` or `warden-op-alice`); the name part is 2–40 of `[a-z0-9-]`, starting with
    /// a letter or digit.
    public static func commonName(for name: String) throws -> String {
        let bare = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
        let bytes = Array(bare.utf8)
        let ok = (2...40).contains(bytes.count)
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            && bytes[0] != 0x2D
        guard ok else {
            throw WardenError.badInput("operator name '\(name.prefix(80))' must be 2 to 40 of a-z, 0-9 and '-', starting with a letter or digit")
        }
        return prefix + bare
    }

    /// Whether `commonName` is an operator CN.
    public static func isOperator(_ commonName: String) -> Bool { commonName.hasPrefix(prefix) }

    /// The CN and the role (from the `role:` OU, nil without one) of a DER certificate; nil if it cannot be parsed.
    public static func identity(of der: [UInt8]) -> (commonName: String, role: String?)? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        var commonNames: [String] = []
        var roles: [String] = []
        for rdn in certificate.subject {
            for attribute in rdn {
                guard let text = String(attribute.value) else { continue }
                if attribute.type == .RDNAttributeType.commonName { commonNames.append(text) }
                if attribute.type == .RDNAttributeType.organizationalUnitName, text.hasPrefix(rolePrefix) {
                    roles.append(String(text.dropFirst(rolePrefix.count)))
                }
            }
        }
        guard commonNames.count == 1, let commonName = commonNames.first else { return nil }
        // Two role attributes are ambiguous: no role.
        return (commonName, roles.count == 1 ? roles[0] : nil)
    }
}

extension CertificateAuthority {
    /// Longest validity of an operator certificate.
    public static let maximumOperatorValidity = WardenDuration(seconds: 397 * 86_400)

    /// Issues an operator client certificate for the key in `csr` (PEM or DER PKCS#10): CN `warden-op-<name>`, OU
    /// `role:<role>`, clientAuth only. The CSR must be self-signed by a P-256, P-384 or Ed25519 key and carry one CN,
    /// equal to the name or to the full operator CN; every other attribute of the request is ignored.
    public func issueOperatorCertificate(
        csr bytes: [UInt8], csrSource: String, name: String, role: String, validity: WardenDuration, now: Date
    ) throws -> OperatorCertificate {
        let commonName = try OperatorNaming.commonName(for: name)
        guard (1...40).contains(role.utf8.count),
            role.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") })
        else { throw WardenError.badInput("role '\(role.prefix(80))' must be 1 to 40 of a-z, 0-9, '.', '-'") }
        guard validity.seconds > 0, validity.seconds <= Self.maximumOperatorValidity.seconds else {
            throw WardenError.policy("operator certificate validity \(validity) must be more than 0 and at most \(Self.maximumOperatorValidity)")
        }
        let what = "CSR '\(csrSource)'"
        guard bytes.count <= CSRValidator.maximumSize else {
            throw WardenError.badInput("\(what) is larger than the \(CSRValidator.maximumSize / 1024) KiB limit for a CSR")
        }
        let der = try PEMInput.documents(bytes, labels: ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"], what: what)
        guard der.count == 1 else { throw WardenError.badInput("\(what) holds \(der.count) requests; expected one") }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: der[0])
        } catch {
            throw WardenError.badInput("\(what) is not a valid PKCS#10 request or uses an unsupported key or algorithm")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw WardenError(.signatureInvalid, "\(what) has an invalid signature (tampered, or not signed by its own key)")
        }
        _ = try CSRValidator.keyType(of: csr.publicKey, what: what)
        var names: [String] = []
        for rdn in csr.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                guard let text = String(attribute.value) else { throw WardenError.badInput("\(what) has a CN that is not a text string") }
                names.append(text)
            }
        }
        let bare = String(commonName.dropFirst(OperatorNaming.prefix.count))
        guard names.count == 1, names[0] == commonName || names[0] == bare else {
            throw WardenError.policy("\(what) must have exactly one CN, '\(bare)' or '\(commonName)' (found \(names))")
        }

        let start = Date(timeIntervalSince1970: (now.timeIntervalSince1970 - Self.clockSkewAllowance).rounded(.down))
        let end = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down) + validity.timeInterval)
        guard end <= issuingCertificate.notValidAfter else {
            throw WardenError.policy("validity \(validity) would outlive the issuing CA")
        }
        var subject = DistinguishedName()
        if let organization = organizationName(of: issuingCertificate.subject) {
            subject.append(RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationName, utf8String: organization)))
        }
        subject.append(
            RelativeDistinguishedName(.init(type: .RDNAttributeType.organizationalUnitName, utf8String: OperatorNaming.rolePrefix + role)))
        subject.append(RelativeDistinguishedName(.init(type: .RDNAttributeType.commonName, utf8String: commonName)))
        let extensions = try Certificate.Extensions([
            try Certificate.Extension(KeyUsage(digitalSignature: true), critical: true),
            try Certificate.Extension(ExtendedKeyUsage([.clientAuth]), critical: false),
            try Certificate.Extension(SubjectKeyIdentifier(hash: csr.publicKey), critical: false),
            try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: issuingKeyIdentifier), critical: false),
        ])
        let certificate = try Certificate(
            version: .v3, serialNumber: SerialNumbers.random(), publicKey: csr.publicKey, notValidBefore: start,
            notValidAfter: end, issuer: issuingCertificate.subject, subject: subject,
            signatureAlgorithm: Self.signatureAlgorithm(for: issuingKey), extensions: extensions, issuerPrivateKey: issuingKey)
        let leaf = try certificate.derBytes()
        return OperatorCertificate(
            commonName: commonName, role: role, serial: Digest.hex(certificate.serialNumber.bytes), der: leaf,
            chainPEM: PEMInput.pem(leaf, label: "CERTIFICATE") + issuingCertificatePEM, notBefore: start, notAfter: end)
    }
}
