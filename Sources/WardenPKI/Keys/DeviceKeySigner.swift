import Crypto
import Foundation
import WardenCore

/// Signs with a device's own unencrypted private key (`device.key`, PEM: PKCS#8 or SEC1), in the forms
/// ``DeviceSignature/verify(signature:over:certificateDER:)`` accepts: ECDSA P-256/SHA-256, P-384/SHA-384,
/// P-521/SHA-512 (DER, as `openssl dgst -sign` writes it) or Ed25519 (64 bytes). The key bytes never leave this call.
public enum DeviceKeySigner {
    /// Signs `message` with the PEM private key `pem`.
    /// - Throws: ``WardenError`` `.badInput` if the key is not one of the supported kinds.
    public static func sign(_ message: [UInt8], privateKeyPEM pem: String) throws -> [UInt8] {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
            return Array(try key.signature(for: SHA256.hash(data: message)).derRepresentation)
        }
        if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) {
            return Array(try key.signature(for: SHA384.hash(data: message)).derRepresentation)
        }
        if let key = try? P521.Signing.PrivateKey(pemRepresentation: pem) {
            return Array(try key.signature(for: SHA512.hash(data: message)).derRepresentation)
        }
        // Ed25519 PKCS#8 (RFC 8410 §7): a fixed 16-byte prefix and the 32-byte seed.
        if let der = PEMBlock.firstDER(in: pem, label: "PRIVATE KEY"), der.count == 48,
            Array(der.prefix(16)) == SigningKey.ed25519PKCS8Prefix,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        {
            return Array(try key.signature(for: message))
        }
        throw WardenError.badInput("the device key is not an ECDSA P-256/P-384/P-521 or Ed25519 private key")
    }
}

/// Minimal PEM block extraction for ``DeviceKeySigner``.
enum PEMBlock {
    /// The DER bytes of the first `-----BEGIN <label>-----` block, or nil.
    static func firstDER(in pem: String, label: String) -> [UInt8]? {
        let begin = "-----BEGIN \(label)-----", end = "-----END \(label)-----"
        guard let start = pem.range(of: begin), let stop = pem.range(of: end, range: start.upperBound..<pem.endIndex) else { return nil }
        let body = pem[start.upperBound..<stop.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body)).map(Array.init)
    }
}
