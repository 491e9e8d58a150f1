import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// A detached signature over a document (an agent config), made by a CA key and carrying the signer's certificate
/// chain, so a device that trusts only the fleet's root can check it offline.
public struct DocumentSignature: Sendable, Equatable, Codable {
    /// The only algorithm issued: ECDSA over P-256 with SHA-256, the signature DER-encoded (RFC 3279 §2.2.3).
    public static let ecdsaP256SHA256 = "ecdsa-p256-sha256"

    /// The signature algorithm (``ecdsaP256SHA256``).
    public var algorithm: String
    /// The DER signature, base64.
    public var value: String
    /// PEM certificates, the signer first, then the certificates up to (and including) the root.
    public var chain: [String]

    /// A signature as stored in a document.
    public init(algorithm: String, value: String, chain: [String]) {
        self.algorithm = algorithm
        self.value = value
        self.chain = chain
    }
}

/// Signs documents with the issuing CA key (`$WARDEN_HOME/ca/issuing.key.pem`).
public struct DocumentSigner: Sendable {
    // The P-256 scalar (swift-crypto keys are not Sendable); rebuilt per signature.
    let rawKey: [UInt8]
    let chainPEM: [String]

    /// Opens the issuing CA key with `passphrase`; the signature chain is the issuing and root certificates.
    /// - Throws: `.notFound` without a CA, `.wrongPassphrase`, `.badInput` for a key that is not P-256 or does not
    ///   match the issuing certificate.
    public static func issuingCA(layout: CALayout, passphrase: [UInt8]) throws -> DocumentSigner {
        let (root, issuing) = try CertificateAuthority.publicCertificates(layout: layout)
        let der = try EncryptedPKCS8.open(pem: try SecureFile.readText(layout.issuingKey, what: "issuing CA key"), passphrase: passphrase)
        let key: P256.Signing.PrivateKey
        do {
            key = try P256.Signing.PrivateKey(derRepresentation: der)
        } catch {
            throw WardenError.badInput("issuing CA key '\(layout.issuingKey)' is not an ECDSA P-256 key")
        }
        guard Certificate.PublicKey(key.publicKey) == issuing.publicKey else {
            throw WardenError.badInput("issuing CA key '\(layout.issuingKey)' does not match '\(layout.issuingCertificate)'")
        }
        return DocumentSigner(
            rawKey: Array(key.rawRepresentation),
            chainPEM: [PEMInput.pem(try issuing.derBytes(), label: "CERTIFICATE"), PEMInput.pem(try root.derBytes(), label: "CERTIFICATE")])
    }

    /// Signs `bytes` (ECDSA P-256, SHA-256).
    public func sign(_ bytes: [UInt8]) throws -> DocumentSignature {
        do {
            let key = try P256.Signing.PrivateKey(rawRepresentation: rawKey)
            let signature = try key.signature(for: bytes)
            return DocumentSignature(
                algorithm: DocumentSignature.ecdsaP256SHA256, value: Data(signature.derRepresentation).base64EncodedString(),
                chain: chainPEM)
        } catch {
            throw WardenError.internal("signing the document failed: \(error)")
        }
    }
}

/// Checks a ``DocumentSignature`` against trust anchors the verifier was provisioned with.
public enum DocumentVerifier {
    /// Verifies that `signature` is a valid signature over `bytes` by the first certificate of its chain, and that
    /// this certificate is a CA certificate (basic constraints cA) that validates (RFC 5280 §6, at `time`) up to a
    /// certificate in `trustPEM`, using the rest of the chain as untrusted intermediates.
    /// - Throws: `.badInput` for a malformed signature or trust file, `.signatureInvalid` for a bad signature,
    ///   `.verificationFailed` when the signer is not a trusted CA.
    public static func verify(
        _ bytes: [UInt8], signature: DocumentSignature, trustPEM: [UInt8], trustSource: String, at time: Date, what: String
    ) async throws {
        guard signature.algorithm == DocumentSignature.ecdsaP256SHA256 else {
            throw WardenError.badInput("\(what) is signed with '\(signature.algorithm.prefix(40))'; only \(DocumentSignature.ecdsaP256SHA256) is accepted")
        }
        guard (1...4).contains(signature.chain.count) else {
            throw WardenError.badInput("\(what) carries \(signature.chain.count) signer certificates; expected 1 to 4")
        }
        let chain = try signature.chain.map { try PEMInput.certificates(Array($0.utf8), what: "\(what) signer chain") }.flatMap { $0 }
        guard let signer = chain.first, let signerKey = P256.Signing.PublicKey(signer.publicKey) else {
            throw WardenError.badInput("\(what): the signer certificate does not hold a P-256 key")
        }
        guard let der = Data(base64Encoded: signature.value), der.count <= 80,
            let ecdsa = try? P256.Signing.ECDSASignature(derRepresentation: der)
        else {
            throw WardenError.badInput("\(what) has a malformed signature value")
        }
        guard signerKey.isValidSignature(ecdsa, for: bytes) else {
            throw WardenError(.signatureInvalid, "\(what) does not match its signature (tampered, or signed by another key)")
        }
        guard let constraints = try? signer.extensions.basicConstraints, case .isCertificateAuthority = constraints else {
            throw WardenError(.verificationFailed, "\(what) is signed by a certificate that is not a CA")
        }
        let verifier = try ChainVerifier(trustPEM: trustPEM, trustSource: trustSource)
        let result = await verifier.verify(leaf: signer, presentedChain: Array(chain.dropFirst()), at: time, purpose: nil, hostname: nil)
        if case .invalid(let reasons) = result {
            throw WardenError(.verificationFailed, "\(what) is signed by a CA that '\(trustSource)' does not trust: \(reasons.first ?? "no chain")")
        }
    }
}
