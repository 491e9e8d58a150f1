import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// What a device needs to know about one of its certificates, free of X.509 library types.
public struct DeviceCertificateInfo: Sendable, Equatable {
    /// The subject's single common name (the device id), nil when there is none or more than one.
    public let commonName: String?
    /// Serial number, lowercase hex.
    public let serial: String
    /// Start of validity.
    public let notBefore: Date
    /// End of validity.
    public let notAfter: Date
    /// SHA-256 (hex) of the subject public key info, as ``DeviceIdentityRequest/publicKeyFingerprint`` reports it.
    public let publicKeyFingerprint: String

    init(_ certificate: Certificate) {
        commonName = ChainVerifier.singleCommonName(of: certificate)
        serial = Digest.hex(certificate.serialNumber.bytes)
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        publicKeyFingerprint = Digest.hex(Digest.sha256(certificate.publicKey.subjectPublicKeyInfoBytes))
    }

    /// The first certificate of a PEM (or DER) file, e.g. `device.crt.pem`.
    /// - Throws: `.badInput` naming `source` when it holds no valid certificate.
    public static func read(_ bytes: [UInt8], source: String) throws -> DeviceCertificateInfo {
        guard let first = try PEMInput.certificates(bytes, what: "certificate file '\(source)'").first else {
            throw WardenError.badInput("certificate file '\(source)' holds no certificate")
        }
        return DeviceCertificateInfo(first)
    }

    /// Whether this certificate is for the public key of `privateKeyPEM` (false when the key does not parse).
    public func isFor(privateKeyPEM: String) -> Bool {
        guard let key = try? ESTIssuedCertificate.publicKey(ofPrivateKeyPEM: privateKeyPEM) else { return false }
        return Digest.hex(Digest.sha256(key.subjectPublicKeyInfoBytes)) == publicKeyFingerprint
    }
}

/// A device certificate returned by EST and checked by ``ESTIssuedCertificate/verify(certsOnlyBase64:privateKeyPEM:deviceID:trustPEM:trustSource:intermediatesDER:now:)``.
public struct ESTIssuedCertificate: Sendable {
    /// The certificate's facts.
    public let info: DeviceCertificateInfo
    /// PEM of the leaf followed by the intermediate CAs of its validated chain (no self-signed root): the content of
    /// `device.crt.pem`, as `warden device enroll --out` writes it.
    public let chainPEM: String

    /// Largest EST response body accepted (base64 of a certs-only message), in bytes.
    public static let maximumResponseBytes = 64 * 1024

    /// Decodes an EST certs-only body (RFC 7030 §4.1.3 / §4.2.3, RFC 8951: base64 of DER PKCS#7, whitespace allowed)
    /// into DER certificates.
    /// - Throws: `.badInput` naming `source` when it is not base64 of a certs-only message.
    public static func certificates(certsOnlyBase64 body: [UInt8], source: String) throws -> [[UInt8]] {
        guard body.count <= maximumResponseBytes else {
            throw WardenError.badInput("\(source) is larger than \(maximumResponseBytes) bytes")
        }
        let cleaned = String(decoding: body, as: UTF8.self).filter { !$0.isWhitespace }
        guard let der = Data(base64Encoded: cleaned) else { throw WardenError.badInput("\(source) is not base64") }
        do {
            return try PKCS7CertsOnly.decode(Array(der))
        } catch let error as WardenError {
            throw WardenError.badInput("\(source): \(error.message)")
        }
    }

    /// Checks the answer to an EST `simpleenroll`/`simplereenroll` before a device installs it:
    /// 1. the body is one certs-only message whose certificates include exactly one for our key;
    /// 2. that certificate's public key equals the public key of `privateKeyPEM` (the key we asked for);
    /// 3. its subject has exactly one CN, equal to `deviceID` (the CA may add other attributes, e.g. O);
    /// 4. it chains to a root of `trustPEM` (RFC 5280 path validation, client-authentication usage) at `now`, with the
    ///    other returned certificates and `intermediatesDER` (e.g. from `/cacerts`) as untrusted intermediates.
    /// - Throws: `.badInput` for a malformed body or key, `.policyViolation` for a certificate that is not ours (other
    ///   key or name), `.verificationFailed` when it does not chain to the trust anchors.
    public static func verify(
        certsOnlyBase64 body: [UInt8], privateKeyPEM: String, deviceID: DeviceID, trustPEM: [UInt8], trustSource: String,
        intermediatesDER: [[UInt8]], now: Date
    ) async throws -> ESTIssuedCertificate {
        let returned = try certificates(certsOnlyBase64: body, source: "the EST response").map { try Certificate(derEncoded: $0) }
        let ours = try publicKey(ofPrivateKeyPEM: privateKeyPEM)
        let mine = returned.filter { $0.publicKey.subjectPublicKeyInfoBytes == ours.subjectPublicKeyInfoBytes }
        guard mine.count == 1, let leaf = mine.first else {
            throw WardenError.policy(
                "the EST response holds \(mine.isEmpty ? "no" : "\(mine.count)") certificate(s) for this device's key; refusing it")
        }
        guard ChainVerifier.singleCommonName(of: leaf) == deviceID.rawValue else {
            throw WardenError.policy("the EST certificate's subject '\(leaf.subject)' does not have the single CN \(deviceID); refusing it")
        }
        let verifier = try ChainVerifier(trustPEM: trustPEM, trustSource: trustSource)
        var candidates = returned.filter { $0 != leaf }
        for der in intermediatesDER {
            candidates.append(try Certificate(derEncoded: der))
        }
        switch await verifier.verify(leaf: leaf, presentedChain: candidates, at: now, purpose: .client, hostname: nil) {
        case .invalid(let reasons):
            throw WardenError(.verificationFailed, "the EST certificate does not chain to '\(trustSource)': \(reasons.first ?? "unknown reason")")
        case .valid(let chain):
            var pem = PEMInput.pem(try leaf.derBytes(), label: "CERTIFICATE")
            let pool = candidates + verifier.roots
            for summary in chain.dropFirst() where summary.subject != summary.issuer {
                if let ca = try pool.first(where: { Digest.hex(Digest.sha256(try $0.derBytes())) == summary.sha256Fingerprint }) {
                    pem += PEMInput.pem(try ca.derBytes(), label: "CERTIFICATE")
                }
            }
            return ESTIssuedCertificate(info: DeviceCertificateInfo(leaf), chainPEM: pem)
        }
    }

    /// The public key of an unencrypted PKCS#8/SEC1 PEM private key (P-256 or P-384).
    static func publicKey(ofPrivateKeyPEM pem: String) throws -> Certificate.PublicKey {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) { return Certificate.PublicKey(key.publicKey) }
        if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) { return Certificate.PublicKey(key.publicKey) }
        throw WardenError.badInput("the device key is not an unencrypted P-256 or P-384 PEM private key")
    }
}

/// The body of an EST enrollment request, built from the CSR file `warden-agent init` wrote.
public enum ESTRequestBody {
    /// The CSR's subject common name and the request body RFC 7030 §4.2.1 expects: base64 of the DER PKCS#10.
    /// - Throws: `.badInput` naming `source` when it is not exactly one PKCS#10 request with a single CN.
    public static func simpleEnroll(csr bytes: [UInt8], source: String) throws -> (commonName: String, body: [UInt8]) {
        guard bytes.count <= CSRValidator.maximumSize else {
            throw WardenError.badInput("CSR '\(source)' is larger than the \(CSRValidator.maximumSize / 1024) KiB limit for a CSR")
        }
        let der = try PEMInput.documents(bytes, labels: ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"], what: "CSR '\(source)'")
        guard der.count == 1, let csr = try? CertificateSigningRequest(derEncoded: der[0]) else {
            throw WardenError.badInput("CSR '\(source)' is not one valid PKCS#10 request")
        }
        var names: [String] = []
        for rdn in csr.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let text = String(attribute.value) { names.append(text) }
            }
        }
        guard names.count == 1 else { throw WardenError.badInput("CSR '\(source)' must name exactly one CN") }
        return (names[0], Array(Data(der[0]).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed]).utf8) + [0x0A])
    }
}
