import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509
import _CryptoExtras

/// PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 §3) with PBES2 (RFC 8018 §6.2): PBKDF2-HMAC-SHA256 + AES-256-CBC.
///
/// `seal` always writes PBES2 with PBKDF2 (RFC 8018 §5.2, Appendix A.2), PRF hmacWithSHA256 (RFC 8018 Appendix B.1.2)
/// and aes256-CBC-Pad (RFC 8018 Appendix B.2.5), which is what
/// `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256` writes, so OpenSSL opens our files and we open its.
///
/// `open` accepts only PBES2 + PBKDF2 with HMAC-SHA256/384/512 and AES-128/192/256-CBC. Everything else
/// (PBES1, scrypt, the RFC 8018 default PRF hmacWithSHA1, other ciphers) is refused as `.badInput`.
///
/// Key material is held in ordinary Swift arrays; Swift cannot guarantee that copies are wiped, so callers should
/// keep decrypted keys in memory only as long as needed.
public enum EncryptedPKCS8 {
    /// The PBKDF2 iteration count used by ``seal(pkcs8DER:passphrase:iterations:)`` unless told otherwise.
    ///
    /// 600 000 iterations of HMAC-SHA256 is the OWASP 2023 recommendation for PBKDF2-HMAC-SHA256; RFC 8018 §4.2
    /// only sets a floor of 1 000. One open costs roughly a quarter of a second on a server core (measured in the
    /// tests), paid once per CA key load.
    public static let defaultIterations: Int = 600_000

    /// The fewest iterations `seal` accepts (RFC 8018 §4.2: "a minimum of 1,000 iterations is recommended").
    static let minimumSealIterations = 1_000
    /// The most iterations `open` accepts, so a hostile file cannot pin a CPU for minutes.
    static let maximumIterations = 10_000_000
    /// The largest PEM or DER input accepted; a PKCS#8 key, even RSA-8192, is far smaller.
    static let maximumInputBytes = 64 * 1024
    /// The PEM label of RFC 7468 §11.
    static let pemLabel = "ENCRYPTED PRIVATE KEY"

    // MARK: - Public API

    /// Encrypts a PKCS#8 PrivateKeyInfo DER and returns a PEM "ENCRYPTED PRIVATE KEY" document. Fresh random salt (16 bytes) and IV.
    ///
    /// - Parameters:
    ///   - pkcs8DER: a DER `PrivateKeyInfo` / `OneAsymmetricKey` (RFC 5958 §2). It is parsed first and refused
    ///     with `.badInput` if it is not one.
    ///   - passphrase: the passphrase bytes (usually UTF-8); must not be empty.
    ///   - iterations: the PBKDF2 iteration count, between 1 000 and 10 000 000.
    /// - Returns: the PEM document (RFC 7468 §11), ending with a newline.
    public static func seal(
        pkcs8DER: [UInt8],
        passphrase: [UInt8],
        iterations: Int = defaultIterations
    ) throws -> String {
        guard !passphrase.isEmpty else {
            throw WardenError.badInput("The passphrase to encrypt a private key with is empty.")
        }
        guard (minimumSealIterations...maximumIterations).contains(iterations) else {
            throw WardenError.badInput(
                "PBKDF2 iteration count \(iterations) is outside \(minimumSealIterations)...\(maximumIterations)."
            )
        }
        guard pkcs8DER.count <= maximumInputBytes else {
            throw WardenError.badInput("The private key is \(pkcs8DER.count) bytes, more than the \(maximumInputBytes)-byte limit.")
        }
        guard isPrivateKeyInfo(pkcs8DER) else {
            throw WardenError.badInput("The bytes to encrypt are not a DER PKCS#8 PrivateKeyInfo (RFC 5958 §2).")
        }

        let salt = randomBytes(16)
        let ivBytes = randomBytes(16)
        let cipher = Cipher.aes256CBC
        let prf = PRF.hmacWithSHA256
        let key = try deriveKey(passphrase: passphrase, salt: salt, iterations: iterations, prf: prf, keyBytes: cipher.keyBytes)
        let ciphertext: Data
        do {
            ciphertext = try AES._CBC.encrypt(pkcs8DER, using: key, iv: AES._CBC.IV(ivBytes: ivBytes))
        } catch {
            throw WardenError.internal("AES-CBC encryption of a private key failed: \(error).")
        }

        var serializer = DER.Serializer()
        do {
            // EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData }   (RFC 5958 §3)
            try serializer.appendConstructedNode(identifier: .sequence) { coder in
                // encryptionAlgorithm: id-PBES2 with PBES2-params (RFC 8018 Appendix A.4)
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(OID.pbes2)
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        // keyDerivationFunc: id-PBKDF2 with PBKDF2-params (RFC 8018 Appendix A.2).
                        // keyLength is omitted: AES has a fixed key length, as OpenSSL also writes it.
                        try coder.appendConstructedNode(identifier: .sequence) { coder in
                            try coder.serialize(OID.pbkdf2)
                            try coder.appendConstructedNode(identifier: .sequence) { coder in
                                try coder.serialize(ASN1OctetString(contentBytes: salt[...]))
                                try coder.serialize(iterations)
                                try coder.appendConstructedNode(identifier: .sequence) { coder in
                                    try coder.serialize(prf.oid)
                                    try coder.serialize(ASN1Null())
                                }
                            }
                        }
                        // encryptionScheme: aes256-CBC-Pad, parameters = the 16-byte IV (RFC 8018 Appendix B.2.5)
                        try coder.appendConstructedNode(identifier: .sequence) { coder in
                            try coder.serialize(cipher.oid)
                            try coder.serialize(ASN1OctetString(contentBytes: ivBytes[...]))
                        }
                    }
                }
                try coder.serialize(ASN1OctetString(contentBytes: ArraySlice(ciphertext)))
            }
        } catch {
            throw WardenError.internal("Encoding an EncryptedPrivateKeyInfo failed: \(error).")
        }
        return PEMDocument(type: pemLabel, derBytes: serializer.serializedBytes).pemString + "\n"
    }

    /// Decrypts; throws WardenError(.wrongPassphrase, ...) when the passphrase is wrong (bad padding or the inner DER
    /// does not parse as PrivateKeyInfo), WardenError(.badInput, ...) for malformed PEM/DER or unsupported algorithms.
    ///
    /// Accepted: PBES2 (RFC 8018 §6.2) with PBKDF2 (§5.2) using hmacWithSHA256/384/512, at most 10 000 000
    /// iterations, and AES-128/192/256-CBC with PKCS#5 padding; inputs up to 64 KiB.
    ///
    /// - Returns: the DER `PrivateKeyInfo` (RFC 5958 §2).
    public static func open(pem: String, passphrase: [UInt8]) throws -> [UInt8] {
        guard pem.utf8.count <= maximumInputBytes else {
            throw WardenError.badInput("The encrypted private key is more than \(maximumInputBytes) bytes long.")
        }
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
        } catch {
            throw WardenError.badInput("The encrypted private key is not a PEM document: \(error).")
        }
        guard document.discriminator == pemLabel else {
            throw WardenError.badInput(
                "The PEM document is a \"\(document.discriminator)\", not an \"\(pemLabel)\" (RFC 7468 §11)."
            )
        }
        return try open(der: document.derBytes, passphrase: passphrase)
    }

    // MARK: - Internal API for the CA

    /// The DER PKCS#8 `PrivateKeyInfo` (RFC 5958 §2) of `key`.
    ///
    /// swift-crypto's `derRepresentation` of P-256/P-384/P-521 keys and swift-certificates' PEM of Ed25519 keys are
    /// already PKCS#8 ("PRIVATE KEY"); an RSA key serializes as PKCS#1 and is wrapped here with rsaEncryption
    /// (RFC 8017 Appendix A.1).
    static func pkcs8DER(of key: Certificate.PrivateKey) throws -> [UInt8] {
        let document: PEMDocument
        do {
            document = try key.serializeAsPEM()
        } catch {
            throw WardenError.badInput("The private key \(key) cannot be exported: \(error).")
        }
        switch document.discriminator {
        case "PRIVATE KEY":
            return document.derBytes
        case "RSA PRIVATE KEY":
            var serializer = DER.Serializer()
            try serializer.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(0)
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(OID.rsaEncryption)
                    try coder.serialize(ASN1Null())
                }
                try coder.serialize(ASN1OctetString(contentBytes: document.derBytes[...]))
            }
            return serializer.serializedBytes
        default:
            throw WardenError.badInput("The private key serializes as \"\(document.discriminator)\", which is not PKCS#8.")
        }
    }

    /// Encrypts a private key as a PEM "ENCRYPTED PRIVATE KEY" (see ``seal(pkcs8DER:passphrase:iterations:)``).
    static func seal(
        _ key: Certificate.PrivateKey,
        passphrase: [UInt8],
        iterations: Int = defaultIterations
    ) throws -> String {
        try seal(pkcs8DER: pkcs8DER(of: key), passphrase: passphrase, iterations: iterations)
    }

    /// Decrypts a PEM "ENCRYPTED PRIVATE KEY" into a signing key. Supports P-256, P-384, P-521, Ed25519 and RSA.
    ///
    /// PBES2 with CBC has no integrity check, so for EC keys the public key embedded in the ECPrivateKey
    /// (RFC 5915 §3) is compared with the one derived from the private scalar: a corrupted or tampered file is
    /// refused (`.badInput`) instead of yielding a different, wrong key.
    static func openPrivateKey(pem: String, passphrase: [UInt8]) throws -> Certificate.PrivateKey {
        let der = try open(pem: pem, passphrase: passphrase)
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(derBytes: der)
        } catch {
            throw WardenError.badInput("The decrypted private key is of an unsupported kind: \(error).")
        }
        if let embedded = embeddedECPublicKey(der) {
            let derived: Data? =
                P256.Signing.PublicKey(key.publicKey)?.x963Representation
                ?? P384.Signing.PublicKey(key.publicKey)?.x963Representation
                ?? P521.Signing.PublicKey(key.publicKey)?.x963Representation
            guard let derived, [UInt8](derived) == embedded else {
                throw WardenError.badInput(
                    "The decrypted EC private key does not match its embedded public key; the file is corrupted or was tampered with."
                )
            }
        }
        return key
    }

    /// The publicKey field of the ECPrivateKey (RFC 5915 §3) inside an EC PrivateKeyInfo, if there is one.
    static func embeddedECPublicKey(_ pkcs8: [UInt8]) -> [UInt8]? {
        let idECPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10_045, 2, 1]
        return try? DER.sequence(DER.parse(pkcs8), identifier: .sequence) { nodes -> [UInt8]? in
            guard nodes.next() != nil, let algorithmNode = nodes.next(), let keyNode = nodes.next() else { return nil }
            while nodes.next() != nil {}
            guard try algorithmIdentifier(algorithmNode).0 == idECPublicKey else { return nil }
            let ecPrivateKey = try DER.parse(ASN1OctetString(derEncoded: keyNode).bytes)
            return try DER.sequence(ecPrivateKey, identifier: .sequence) { fields -> [UInt8]? in
                var publicKey: [UInt8]?
                while let field = fields.next() {
                    if field.identifier == ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific) {
                        publicKey = try DER.explicitlyTagged(field, tagNumber: 1, tagClass: .contextSpecific) { node in
                            Array(try ASN1BitString(derEncoded: node).bytes)
                        }
                    }
                }
                return publicKey
            }
        } ?? nil
    }

    // MARK: - Decoding

    /// Decrypts a DER EncryptedPrivateKeyInfo (RFC 5958 §3).
    static func open(der: [UInt8], passphrase: [UInt8]) throws -> [UInt8] {
        guard der.count <= maximumInputBytes else {
            throw WardenError.badInput("The encrypted private key is more than \(maximumInputBytes) bytes long.")
        }
        let parameters = try decode(der)
        let key = try deriveKey(
            passphrase: passphrase,
            salt: parameters.salt,
            iterations: parameters.iterations,
            prf: parameters.prf,
            keyBytes: parameters.cipher.keyBytes
        )
        return try decrypt(parameters, key: key)
    }

    /// PBES2 decryption (RFC 8018 §6.2.2 steps 4-6) with an already derived key, then the PrivateKeyInfo check.
    static func decrypt(_ parameters: Parameters, key: SymmetricKey) throws -> [UInt8] {
        let plaintext: Data
        do {
            plaintext = try AES._CBC.decrypt(parameters.ciphertext, using: key, iv: AES._CBC.IV(ivBytes: parameters.iv))
        } catch {
            // RFC 8018 §6.2.2 step 5: a padding error means the key (so the passphrase) is wrong.
            throw WardenError(.wrongPassphrase, "The passphrase does not decrypt the private key (bad padding).")
        }
        let bytes = [UInt8](plaintext)
        guard isPrivateKeyInfo(bytes) else {
            // Right-looking padding happens by chance about once in 256 wrong passphrases.
            throw WardenError(.wrongPassphrase, "The passphrase does not decrypt the private key (no PKCS#8 inside).")
        }
        return bytes
    }

    /// The PBES2 parameters and ciphertext of an EncryptedPrivateKeyInfo.
    struct Parameters {
        var salt: [UInt8]
        var iterations: Int
        var prf: PRF
        var cipher: Cipher
        var iv: [UInt8]
        var ciphertext: [UInt8]
    }

    static func decode(_ der: [UInt8]) throws -> Parameters {
        do {
            let root = try DER.parse(der)
            return try DER.sequence(root, identifier: .sequence) { nodes in
                guard let algorithmNode = nodes.next(), let dataNode = nodes.next() else {
                    throw WardenError.badInput("EncryptedPrivateKeyInfo must have two fields (RFC 5958 §3).")
                }
                let (algorithm, pbesParameters) = try algorithmIdentifier(algorithmNode)
                guard algorithm == OID.pbes2, let pbesParameters else {
                    throw WardenError.badInput("The private key is encrypted with \(algorithm), not PBES2 (RFC 8018 §6.2).")
                }
                var parameters = try decodePBES2(pbesParameters)
                let data = try ASN1OctetString(derEncoded: dataNode)
                parameters.ciphertext = Array(data.bytes)
                guard !parameters.ciphertext.isEmpty, parameters.ciphertext.count % 16 == 0 else {
                    throw WardenError.badInput(
                        "The encrypted key is \(parameters.ciphertext.count) bytes, not a positive multiple of the AES block."
                    )
                }
                return parameters
            }
        } catch let error as WardenError {
            throw error
        } catch {
            throw WardenError.badInput("The encrypted private key is not valid DER EncryptedPrivateKeyInfo: \(error).")
        }
    }

    /// PBES2-params ::= SEQUENCE { keyDerivationFunc, encryptionScheme }   (RFC 8018 Appendix A.4)
    static func decodePBES2(_ node: ASN1Node) throws -> Parameters {
        try DER.sequence(node, identifier: .sequence) { nodes in
            guard let kdfNode = nodes.next(), let schemeNode = nodes.next() else {
                throw WardenError.badInput("PBES2-params must have two fields (RFC 8018 Appendix A.4).")
            }
            let (kdf, kdfParameters) = try algorithmIdentifier(kdfNode)
            guard kdf == OID.pbkdf2, let kdfParameters else {
                throw WardenError.badInput("The key derivation function \(kdf) is not PBKDF2 (RFC 8018 §5.2).")
            }
            let (scheme, schemeParameters) = try algorithmIdentifier(schemeNode)
            guard let cipher = Cipher(oid: scheme) else {
                throw WardenError.badInput("The encryption scheme \(scheme) is not AES-128/192/256-CBC.")
            }
            guard let schemeParameters else {
                throw WardenError.badInput("The AES-CBC parameters (the IV) are missing (RFC 8018 Appendix B.2.5).")
            }
            let iv = Array(try ASN1OctetString(derEncoded: schemeParameters).bytes)
            guard iv.count == 16 else {
                throw WardenError.badInput("The AES-CBC IV is \(iv.count) bytes, not 16 (RFC 8018 Appendix B.2.5).")
            }

            // PBKDF2-params ::= SEQUENCE { salt, iterationCount, keyLength OPTIONAL, prf DEFAULT hmacWithSHA1 }
            // (RFC 8018 Appendix A.2)
            return try DER.sequence(kdfParameters, identifier: .sequence) { nodes in
                guard let saltNode = nodes.next(), let countNode = nodes.next() else {
                    throw WardenError.badInput("PBKDF2-params lacks the salt or the iteration count (RFC 8018 Appendix A.2).")
                }
                guard saltNode.identifier == .octetString else {
                    throw WardenError.badInput("Only a specified (OCTET STRING) PBKDF2 salt is supported.")
                }
                let salt = Array(try ASN1OctetString(derEncoded: saltNode).bytes)
                guard (1...1024).contains(salt.count) else {
                    throw WardenError.badInput("The PBKDF2 salt is \(salt.count) bytes long.")
                }
                let iterations = try Int(derEncoded: countNode)
                guard (1...maximumIterations).contains(iterations) else {
                    throw WardenError.badInput("The PBKDF2 iteration count \(iterations) is outside 1...\(maximumIterations).")
                }
                var next = nodes.next()
                if let node = next, node.identifier == .integer {
                    let keyLength = try Int(derEncoded: node)
                    guard keyLength == cipher.keyBytes else {
                        throw WardenError.badInput(
                            "The PBKDF2 key length \(keyLength) does not match \(cipher) (\(cipher.keyBytes) bytes)."
                        )
                    }
                    next = nodes.next()
                }
                guard let prfNode = next else {
                    throw WardenError.badInput("The PBKDF2 PRF is the default hmacWithSHA1, which is not accepted.")
                }
                let (prfOID, prfParameters) = try algorithmIdentifier(prfNode)
                guard let prf = PRF(oid: prfOID) else {
                    throw WardenError.badInput("The PBKDF2 PRF \(prfOID) is not hmacWithSHA256/384/512.")
                }
                if let prfParameters {
                    _ = try ASN1Null(derEncoded: prfParameters)
                }
                return Parameters(salt: salt, iterations: iterations, prf: prf, cipher: cipher, iv: iv, ciphertext: [])
            }
        }
    }

    /// AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }   (RFC 5280 §4.1.1.2)
    static func algorithmIdentifier(_ node: ASN1Node) throws -> (ASN1ObjectIdentifier, ASN1Node?) {
        try DER.sequence(node, identifier: .sequence) { nodes in
            guard let oidNode = nodes.next() else {
                throw WardenError.badInput("An AlgorithmIdentifier is empty.")
            }
            return (try ASN1ObjectIdentifier(derEncoded: oidNode), nodes.next())
        }
    }

    /// Whether `bytes` is a DER OneAsymmetricKey (RFC 5958 §2): version 0 or 1, an AlgorithmIdentifier,
    /// an OCTET STRING private key, then only the optional [0] attributes and [1] publicKey.
    static func isPrivateKeyInfo(_ bytes: [UInt8]) -> Bool {
        do {
            let root = try DER.parse(bytes)
            return try DER.sequence(root, identifier: .sequence) { nodes in
                guard let versionNode = nodes.next(), let algorithmNode = nodes.next(), let keyNode = nodes.next() else {
                    return false
                }
                let version = try Int(derEncoded: versionNode)
                guard version == 0 || version == 1 else { return false }
                _ = try algorithmIdentifier(algorithmNode)
                _ = try ASN1OctetString(derEncoded: keyNode)
                while let node = nodes.next() {
                    guard node.identifier.tagClass == .contextSpecific, node.identifier.tagNumber <= 1 else {
                        return false
                    }
                }
                return true
            }
        } catch {
            return false
        }
    }

    // MARK: - Primitives

    /// PBKDF2 (RFC 8018 §5.2). `unsafeUncheckedRounds` because files written by `openssl pkcs8` default to 2 048
    /// iterations, below swift-crypto's 210 000 floor; the bounds are checked by the callers.
    static func deriveKey(passphrase: [UInt8], salt: [UInt8], iterations: Int, prf: PRF, keyBytes: Int) throws -> SymmetricKey {
        do {
            return try KDF.Insecure.PBKDF2.deriveKey(
                from: passphrase,
                salt: salt,
                using: prf.hashFunction,
                outputByteCount: keyBytes,
                unsafeUncheckedRounds: iterations
            )
        } catch {
            throw WardenError.internal("PBKDF2 failed: \(error).")
        }
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// The PBKDF2 pseudo-random functions accepted (RFC 8018 Appendix B.1.2).
    enum PRF: Sendable {
        case hmacWithSHA256, hmacWithSHA384, hmacWithSHA512

        init?(oid: ASN1ObjectIdentifier) {
            switch oid {
            case OID.hmacWithSHA256: self = .hmacWithSHA256
            case OID.hmacWithSHA384: self = .hmacWithSHA384
            case OID.hmacWithSHA512: self = .hmacWithSHA512
            default: return nil
            }
        }

        var oid: ASN1ObjectIdentifier {
            switch self {
            case .hmacWithSHA256: OID.hmacWithSHA256
            case .hmacWithSHA384: OID.hmacWithSHA384
            case .hmacWithSHA512: OID.hmacWithSHA512
            }
        }

        var hashFunction: KDF.Insecure.PBKDF2.HashFunction {
            switch self {
            case .hmacWithSHA256: .sha256
            case .hmacWithSHA384: .sha384
            case .hmacWithSHA512: .sha512
            }
        }
    }

    /// The encryption schemes accepted (RFC 8018 Appendix B.2.5, aesXXX-CBC-Pad).
    enum Cipher: Sendable {
        case aes128CBC, aes192CBC, aes256CBC

        init?(oid: ASN1ObjectIdentifier) {
            switch oid {
            case OID.aes128CBC: self = .aes128CBC
            case OID.aes192CBC: self = .aes192CBC
            case OID.aes256CBC: self = .aes256CBC
            default: return nil
            }
        }

        var oid: ASN1ObjectIdentifier {
            switch self {
            case .aes128CBC: OID.aes128CBC
            case .aes192CBC: OID.aes192CBC
            case .aes256CBC: OID.aes256CBC
            }
        }

        var keyBytes: Int {
            switch self {
            case .aes128CBC: 16
            case .aes192CBC: 24
            case .aes256CBC: 32
            }
        }
    }

    /// Object identifiers from RFC 8018 Appendix C and RFC 8017 Appendix A.1.
    enum OID {
        static let pbes2: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 5, 13]
        static let pbkdf2: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 5, 12]
        static let hmacWithSHA256: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 9]
        static let hmacWithSHA384: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 10]
        static let hmacWithSHA512: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 2, 11]
        static let aes128CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 2]
        static let aes192CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 22]
        static let aes256CBC: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 42]
        static let rsaEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 1, 1]
    }
}
