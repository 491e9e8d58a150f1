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
    /// The SubjectPublicKeyInfo, DER, in canonical form (named curve, uncompressed point): what the certificate carries.
    let subjectPublicKeyInfo: [UInt8]
    /// Where the subject public key bits (the BIT STRING's content after the unused-bits octet) sit in
    /// ``subjectPublicKeyInfo``: the input of the key identifier and of ``publicKeyFingerprint``.
    let subjectPublicKeyBits: Range<Int>
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
        let spki = canonicalSubjectPublicKeyInfo(csrDER: der[0], keyType: keyType, key: csr.publicKey)
        return ValidatedCSR(
            deviceID: deviceID,
            keyType: keyType,
            publicKeyFingerprint: Digest.hex(Digest.sha256(spki.der[spki.keyBits])),
            publicKey: csr.publicKey,
            subjectPublicKeyInfo: spki.der,
            subjectPublicKeyBits: spki.keyBits
        )
    }

    /// The canonical SubjectPublicKeyInfo DER for each key type (RFC 5480 §2 with a named curve and an uncompressed
    /// point, RFC 8410 §4): everything before the key bits, and the key bits' length.
    static let canonicalSPKIPrefixes: [String: (prefix: [UInt8], keyLength: Int)] = [
        "P-256": (
            [
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48,
                0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
            ], 65
        ),
        "P-384": (
            [
                0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B, 0x81, 0x04,
                0x00, 0x22, 0x03, 0x62, 0x00,
            ], 97
        ),
        "Ed25519": ([0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00], 32),
    ]

    /// The request's SubjectPublicKeyInfo in canonical form. When the request already carries exactly that encoding
    /// (what every mainstream tool writes) its bytes are used as they are; otherwise (e.g. a compressed point) the
    /// parsed key is re-encoded, which costs an EC point conversion.
    static func canonicalSubjectPublicKeyInfo(
        csrDER: [UInt8], keyType: String, key: Certificate.PublicKey
    ) -> (der: [UInt8], keyBits: Range<Int>) {
        guard let (prefix, keyLength) = canonicalSPKIPrefixes[keyType] else {
            preconditionFailure("unknown key type \(keyType)")
        }
        let keyBits = prefix.count..<(prefix.count + keyLength)
        if let raw = rawSubjectPublicKeyInfo(csrDER), raw.count == keyBits.upperBound, raw.starts(with: prefix),
            keyType == "Ed25519" || raw[raw.startIndex + prefix.count] == 0x04
        {
            return (Array(raw), keyBits)
        }
        return (prefix + Array(key.subjectPublicKeyInfoBytes), keyBits)
    }

    /// The raw SubjectPublicKeyInfo element of a DER CertificationRequest (RFC 2986 §4):
    /// `SEQUENCE { SEQUENCE { version, subject, subjectPKInfo, ... }, ... }`. Only called on requests that already
    /// parsed, but bounds-checked anyway: nil when the layout is not as expected.
    static func rawSubjectPublicKeyInfo(_ der: [UInt8]) -> ArraySlice<UInt8>? {
        /// Reads the header at `offset`: the element's range and where its contents start.
        func element(at offset: Int, limit: Int) -> (end: Int, contents: Int)? {
            guard offset + 2 <= limit else { return nil }
            let first = Int(der[offset + 1])
            var length = first
            var contents = offset + 2
            if first >= 0x80 {
                let count = first & 0x7F
                guard (1...3).contains(count), contents + count <= limit else { return nil }
                length = 0
                for index in 0..<count { length = length << 8 | Int(der[contents + index]) }
                contents += count
            }
            guard contents + length <= limit else { return nil }
            return (contents + length, contents)
        }
        guard let request = element(at: 0, limit: der.count), let info = element(at: request.contents, limit: request.end),
            let version = element(at: info.contents, limit: info.end), let subject = element(at: version.end, limit: info.end),
            let spki = element(at: subject.end, limit: info.end), der[subject.end] == 0x30
        else { return nil }
        return der[subject.end..<spki.end]
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
