import Crypto
import Foundation
import SwiftASN1
import WardenCore

/// The signature algorithms Warden uses for signed metadata (TUF roles): Ed25519 (RFC 8032) and ECDSA over P-256
/// with SHA-256 (FIPS 186-4, signatures DER-encoded as in RFC 3279 §2.2.3).
public enum SigningAlgorithm: String, Sendable, Codable, CaseIterable {
    /// Ed25519 (RFC 8032 §5.1); 64-byte signatures.
    case ed25519
    /// ECDSA P-256 with SHA-256; DER `Ecdsa-Sig-Value` signatures.
    case ecdsaP256 = "ecdsa-sha2-nistp256"
}

/// A private signing key (Ed25519 or ECDSA P-256) that signs raw bytes, stored encrypted as PKCS#8
/// (``EncryptedPKCS8``). swift-crypto types never leave WardenPKI.
public struct SigningKey: Sendable {
    // swift-crypto's key types are not Sendable, so the key is kept as its raw private bytes (the Ed25519 seed or the
    // P-256 scalar) and rebuilt for each use, which costs far less than the signature itself.
    enum Storage: Sendable {
        case ed25519([UInt8])
        case p256([UInt8])
    }

    let storage: Storage

    init(storage: Storage) { self.storage = storage }

    /// The algorithm of this key.
    public var algorithm: SigningAlgorithm {
        switch storage {
        case .ed25519: .ed25519
        case .p256: .ecdsaP256
        }
    }

    /// A fresh random key.
    public static func generate(_ algorithm: SigningAlgorithm) -> SigningKey {
        switch algorithm {
        case .ed25519: SigningKey(storage: .ed25519(Array(Curve25519.Signing.PrivateKey().rawRepresentation)))
        case .ecdsaP256: SigningKey(storage: .p256(Array(P256.Signing.PrivateKey().rawRepresentation)))
        }
    }

    /// The swift-crypto key (the raw bytes were valid when stored).
    var ed25519Key: Curve25519.Signing.PrivateKey? {
        guard case .ed25519(let raw) = storage else { return nil }
        return try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
    }

    var p256Key: P256.Signing.PrivateKey? {
        guard case .p256(let raw) = storage else { return nil }
        return try? P256.Signing.PrivateKey(rawRepresentation: raw)
    }

    /// The matching public key.
    public var publicKey: VerifyingKey {
        if let key = ed25519Key { return VerifyingKey(storage: .ed25519(Array(key.publicKey.rawRepresentation))) }
        return VerifyingKey(storage: .p256(Array(p256Key!.publicKey.x963Representation)))
    }

    /// Signs `message`: a 64-byte Ed25519 signature, or a DER ECDSA signature over SHA-256(`message`).
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        do {
            if let key = ed25519Key { return Array(try key.signature(for: message)) }
            guard let key = p256Key else { throw WardenError.internal("the signing key is malformed") }
            return Array(try key.signature(for: message).derRepresentation)
        } catch {
            throw WardenError.internal("signing with a \(algorithm.rawValue) key failed: \(error)")
        }
    }

    /// The DER PKCS#8 `PrivateKeyInfo` (RFC 5958 §2; Ed25519 per RFC 8410 §7).
    var pkcs8DER: [UInt8] {
        if let key = ed25519Key { return Self.ed25519PKCS8Prefix + Array(key.rawRepresentation) }
        return Array(p256Key!.derRepresentation)
    }

    /// RFC 8410 §7: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
    static let ed25519PKCS8Prefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    /// The key encrypted at rest: a PEM "ENCRYPTED PRIVATE KEY" (PBES2, see ``EncryptedPKCS8``).
    public func sealed(passphrase: [UInt8], iterations: Int = EncryptedPKCS8.defaultIterations) throws -> String {
        try EncryptedPKCS8.seal(pkcs8DER: pkcs8DER, passphrase: passphrase, iterations: iterations)
    }

    /// Opens a key written by ``sealed(passphrase:iterations:)`` (or by `openssl pkcs8 -topk8 -v2 aes-256-cbc`).
    /// - Throws: `.wrongPassphrase`, or `.badInput` for a key that is not Ed25519 or P-256 or is corrupted.
    public static func open(pem: String, passphrase: [UInt8]) throws -> SigningKey {
        try SigningKey(pkcs8DER: EncryptedPKCS8.open(pem: pem, passphrase: passphrase))
    }

    /// Parses a DER PKCS#8 Ed25519 or P-256 private key.
    init(pkcs8DER der: [UInt8]) throws {
        if der.count == 48, Array(der.prefix(16)) == Self.ed25519PKCS8Prefix {
            do {
                storage = .ed25519(Array(try Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32)).rawRepresentation))
            } catch {
                throw WardenError.badInput("the Ed25519 private key is malformed: \(error)")
            }
            return
        }
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(derRepresentation: der)
        } catch {
            throw WardenError.badInput("the private key is neither Ed25519 nor ECDSA P-256")
        }
        // PBES2-CBC has no integrity check: refuse a key whose embedded public key disagrees with its scalar.
        if let embedded = EncryptedPKCS8.embeddedECPublicKey(der), embedded != Array(key.publicKey.x963Representation) {
            throw WardenError.badInput("the P-256 private key does not match its embedded public key; the file is corrupted")
        }
        storage = .p256(Array(key.rawRepresentation))
    }
}

/// A public key that verifies signatures made by a ``SigningKey``.
public struct VerifyingKey: Sendable, Hashable {
    // Raw public bytes (32-byte Ed25519 key, 65-byte uncompressed P-256 point), validated when stored.
    enum Storage: Sendable {
        case ed25519([UInt8])
        case p256([UInt8])
    }

    let storage: Storage

    /// The algorithm of this key.
    public var algorithm: SigningAlgorithm {
        switch storage {
        case .ed25519: .ed25519
        case .p256: .ecdsaP256
        }
    }

    /// The raw public key: 32 bytes for Ed25519 (RFC 8032 §5.1.5), the 65-byte uncompressed point for P-256.
    public var rawRepresentation: [UInt8] {
        switch storage {
        case .ed25519(let raw), .p256(let raw): raw
        }
    }

    /// Lowercase hex of ``rawRepresentation`` (the TUF/securesystemslib `ed25519` key value).
    public var hex: String { Digest.hex(rawRepresentation) }

    /// The SubjectPublicKeyInfo PEM (RFC 7468 §13), with a final newline (the securesystemslib `ecdsa` key value).
    public var pem: String {
        switch storage {
        case .ed25519(let raw):
            // SPKI for Ed25519 (RFC 8410 §4): fixed 12-byte prefix + the 32-byte key.
            let der: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00] + raw
            return PEMDocument(type: "PUBLIC KEY", derBytes: der).pemString + "\n"
        case .p256(let raw):
            return ((try? P256.Signing.PublicKey(x963Representation: raw).pemRepresentation) ?? "") + "\n"
        }
    }

    /// An Ed25519 public key from its 32 raw bytes in hex.
    public init(ed25519Hex hex: String) throws {
        guard hex.utf8.count == 64, let bytes = Digest.bytes(fromHex: hex), !hex.contains(":") else {
            throw WardenError.badInput("an ed25519 public key must be 64 hex digits")
        }
        do {
            storage = .ed25519(Array(try Curve25519.Signing.PublicKey(rawRepresentation: bytes).rawRepresentation))
        } catch {
            throw WardenError.badInput("the ed25519 public key is malformed")
        }
    }

    /// A P-256 public key from a SubjectPublicKeyInfo PEM.
    public init(p256PEM pem: String) throws {
        guard pem.utf8.count <= 4096 else { throw WardenError.badInput("the ECDSA public key PEM is too long") }
        do {
            storage = .p256(Array(try P256.Signing.PublicKey(pemRepresentation: pem).x963Representation))
        } catch {
            throw WardenError.badInput("the ECDSA public key is not a P-256 SubjectPublicKeyInfo PEM")
        }
    }

    init(storage: Storage) { self.storage = storage }

    /// Whether `signature` is a valid signature of `message` by this key. Never throws: malformed is invalid.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch storage {
        case .ed25519(let raw):
            guard signature.count == 64, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
            return key.isValidSignature(signature, for: message)
        case .p256(let raw):
            guard signature.count <= 80, let key = try? P256.Signing.PublicKey(x963Representation: raw),
                let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature)
            else {
                return false
            }
            // Refuse non-canonical DER encodings (BER leniency would make signatures malleable).
            guard Array(parsed.derRepresentation) == signature else { return false }
            return key.isValidSignature(parsed, for: message)
        }
    }

    /// Same algorithm and same public key bytes.
    public static func == (lhs: VerifyingKey, rhs: VerifyingKey) -> Bool {
        lhs.algorithm == rhs.algorithm && lhs.rawRepresentation == rhs.rawRepresentation
    }

    /// Hashes the algorithm and the public key bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(algorithm)
        hasher.combine(rawRepresentation)
    }
}
