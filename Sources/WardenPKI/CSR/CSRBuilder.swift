import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// A device's fresh identity: its private key and the PKCS#10 request (RFC 2986) it sends to the authority.
///
/// Both are PEM text, so the agent never sees swift-crypto or X509 types.
public struct DeviceIdentityRequest: Sendable {
    /// The device the request names (subject CN).
    public let deviceID: DeviceID
    /// The ECDSA P-256 private key as an unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 5958 §2,
    /// RFC 7468 §10). Secret: write it with mode 0600 and never log it.
    public let privateKeyPEM: String
    /// The CSR as PEM (`-----BEGIN CERTIFICATE REQUEST-----`, RFC 7468 §7).
    public let csrPEM: String
    /// SHA-256 (hex) of the subject public key info, as ``ValidatedCSR/publicKeyFingerprint`` reports it.
    public let publicKeyFingerprint: String
}

/// Builds the key and CSR a device generates for itself before enrollment (`warden-agent init`).
public enum CSRBuilder {
    /// Generates a P-256 key and a CSR whose subject is exactly `CN=<deviceID>`, signed with that key
    /// (ecdsa-with-SHA256), so it passes ``CSRValidator/validate(_:deviceID:profile:source:)`` for the device profile.
    /// - Throws: `.internal` if the encoding fails (never for a valid device id).
    public static func generate(for deviceID: DeviceID) throws -> DeviceIdentityRequest {
        let key = P256.Signing.PrivateKey()
        do {
            let subject = try DistinguishedName { CommonName(deviceID.rawValue) }
            let csr = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key),
                attributes: CertificateSigningRequest.Attributes(), signatureAlgorithm: .ecdsaWithSHA256)
            var serializer = DER.Serializer()
            try serializer.serialize(csr)
            let publicKey = Certificate.PublicKey(key.publicKey)
            return DeviceIdentityRequest(
                deviceID: deviceID,
                privateKeyPEM: key.pemRepresentation + "\n",
                csrPEM: PEMInput.pem(serializer.serializedBytes, label: "CERTIFICATE REQUEST"),
                publicKeyFingerprint: Digest.hex(Digest.sha256(publicKey.subjectPublicKeyInfoBytes)))
        } catch {
            throw WardenError.internal("cannot build the CSR for '\(deviceID)': \(error)")
        }
    }
}
