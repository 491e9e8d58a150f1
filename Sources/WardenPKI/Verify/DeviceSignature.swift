import Crypto
import SwiftASN1
import X509

/// Verifies a signature made with a device's private key, using the public key of the device's certificate, so that
/// authority modules can authenticate device-signed reports (OTA status) without importing swift-crypto.
public enum DeviceSignature {
    /// True if `signature` signs `message` under the public key of the DER certificate `certificateDER`:
    /// ECDSA P-256 with SHA-256, P-384 with SHA-384 or P-521 with SHA-512 (signature DER-encoded, as
    /// `openssl dgst -sign` writes it), or Ed25519 (64 raw bytes). False for anything else, never throws.
    public static func verify(signature: [UInt8], over message: [UInt8], certificateDER: [UInt8]) -> Bool {
        guard signature.count <= 256, let certificate = try? Certificate(derEncoded: certificateDER) else { return false }
        let key = certificate.publicKey
        if let p256 = P256.Signing.PublicKey(key) {
            guard let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return p256.isValidSignature(parsed, for: SHA256.hash(data: message))
        }
        if let p384 = P384.Signing.PublicKey(key) {
            guard let parsed = try? P384.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return p384.isValidSignature(parsed, for: SHA384.hash(data: message))
        }
        if let p521 = P521.Signing.PublicKey(key) {
            guard let parsed = try? P521.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return p521.isValidSignature(parsed, for: SHA512.hash(data: message))
        }
        if let ed25519 = Curve25519.Signing.PublicKey(key) {
            return ed25519.isValidSignature(signature, for: message)
        }
        return false
    }
}
