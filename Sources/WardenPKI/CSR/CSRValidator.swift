import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// A certificate signing request that passed every check and may be issued.
///
/// Only ``CSRValidator`` creates values of this type, so holding one proves that the signature verified,
/// the key type is allowed by the profile and the subject names exactly the device.
public struct ValidatedCSR: Sendable {
    /// The device the CSR names (CN).
    public let deviceID: DeviceID
    /// `P-256`, `P-384` or `Ed25519`.
    public let keyType: String
    /// SHA-256 (hex) of the subject public key bits: the same key always gives the same value.
    public let publicKeyFingerprint: String
    /// The subject public key.
    let publicKey: Certificate.PublicKey
}

/// Checks a PKCS#10 CSR (RFC 2986) against Warden's naming policy and a certificate profile.
public enum CSRValidator {
    /// Largest CSR accepted, in bytes. A P-256 CSR is about 400 bytes of PEM.
    public static let maximumSize = 64 * 1024

    /// Parses and checks `bytes` (PEM or DER) as the CSR of `deviceID`.
    ///
    /// Checks, in order: size; PEM/DER syntax; the self-signature (proof of possession of the private key);
    /// the key type against `profile.allowedKeyTypes`; exactly one CN, equal to `deviceID` (which itself passed
    /// the naming rule and the reserved-name list).
    /// - Parameter source: how errors name the input, usually the file path.
    public static func validate(
        _ bytes: [UInt8], deviceID: DeviceID, profile: CertificateProfile, source: String
    ) throws -> ValidatedCSR {
        let what = "CSR '\(source)'"
        guard bytes.count <= maximumSize else {
            throw WardenError.badInput("\(what) is larger than the \(maximumSize / 1024) KiB limit for a CSR")
        }
        let der = try PEMInput.documents(
            bytes, labels: ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"], what: what)
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
        let keyType = try self.keyType(of: csr.publicKey, what: what)
        guard profile.allowedKeyTypes.contains(keyType) else {
            throw WardenError.policy("\(what) uses a \(keyType) key, which profile '\(profile.name)' does not allow")
        }
        try checkSubject(csr.subject, deviceID: deviceID, what: what)
        return ValidatedCSR(
            deviceID: deviceID,
            keyType: keyType,
            publicKeyFingerprint: Digest.hex(Digest.sha256(csr.publicKey.subjectPublicKeyInfoBytes)),
            publicKey: csr.publicKey
        )
    }

    /// Names the key type, refusing anything Warden does not issue to devices (RSA, P-521, unknown).
    static func keyType(of key: Certificate.PublicKey, what: String) throws -> String {
        if P256.Signing.PublicKey(key) != nil { return "P-256" }
        if P384.Signing.PublicKey(key) != nil { return "P-384" }
        if Curve25519.Signing.PublicKey(key) != nil { return "Ed25519" }
        throw WardenError.policy("\(what) uses a \(key) key; devices must use P-256, P-384 or Ed25519")
    }

    /// The subject must carry exactly one CN and it must equal the device id. Other attributes are ignored:
    /// the issued subject is built by Warden, never copied from the request.
    static func checkSubject(_ subject: DistinguishedName, deviceID: DeviceID, what: String) throws {
        var commonNames: [String] = []
        for rdn in subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                guard let text = String(attribute.value) else {
                    throw WardenError.badInput("\(what) has a CN that is not a text string")
                }
                commonNames.append(text)
            }
        }
        guard commonNames.count == 1, let commonName = commonNames.first else {
            throw WardenError.policy("\(what) must have exactly one CN (found \(commonNames.count))")
        }
        guard commonName == deviceID.rawValue else {
            // Validate the CN on its own first so a reserved or malformed CN is reported as such.
            try DeviceID.validate(commonName)
            throw WardenError.policy("\(what) has CN '\(commonName)', which does not match device id '\(deviceID)'")
        }
    }
}
