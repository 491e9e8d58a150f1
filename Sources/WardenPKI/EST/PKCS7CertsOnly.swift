import SwiftASN1
import WardenCore
import X509

/// The "certs-only" CMS message of RFC 7030 §4.1.3 and §4.2.3: a degenerate SignedData (RFC 5652 §5) that carries
/// certificates and nothing else (no content, no signers), as PKCS#7 `p7b` files do.
///
/// ```
/// ContentInfo ::= SEQUENCE { contentType id-signedData, content [0] EXPLICIT SignedData }
/// SignedData  ::= SEQUENCE { version 1, digestAlgorithms SET {}, encapContentInfo { id-data },
///                            certificates [0] IMPLICIT SET OF Certificate, signerInfos SET {} }
/// ```
public enum PKCS7CertsOnly {
    static let signedData: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 2]
    static let data: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 1]
    /// Most certificates a message may carry, in either direction.
    public static let maximumCertificates = 16

    /// Encodes DER certificates as a certs-only message (DER). Each input must be one valid certificate.
    /// The SET OF is sorted as DER requires (X.690 §11.6), so the order of `certificatesDER` is not kept.
    /// - Throws: `.badInput` if an input is not a certificate or there are none / too many.
    public static func encode(certificatesDER: [[UInt8]]) throws -> [UInt8] {
        guard (1...maximumCertificates).contains(certificatesDER.count) else {
            throw WardenError.badInput("a certs-only message carries 1 to \(maximumCertificates) certificates, not \(certificatesDER.count)")
        }
        for (index, der) in certificatesDER.enumerated() {
            guard (try? Certificate(derEncoded: der)) != nil else {
                throw WardenError.badInput("certificate #\(index + 1) for the certs-only message is not a valid X.509 certificate")
            }
        }
        let sorted = certificatesDER.sorted { $0.lexicographicallyPrecedes($1) }
        var coder = DER.Serializer()
        do {
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(signedData)
                try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                    try coder.appendConstructedNode(identifier: .sequence) { coder in
                        try coder.serialize(1)  // CMSVersion 1: no attribute certificates, id-data content (RFC 5652 §5.1)
                        coder.appendConstructedNode(identifier: .set) { _ in }  // digestAlgorithms
                        try coder.appendConstructedNode(identifier: .sequence) { coder in  // encapContentInfo, no eContent
                            try coder.serialize(data)
                        }
                        coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { coder in
                            for der in sorted { coder.serializeRawBytes(der) }
                        }
                        coder.appendConstructedNode(identifier: .set) { _ in }  // signerInfos
                    }
                }
            }
        } catch {
            throw WardenError.internal("encoding a certs-only message failed: \(error)")
        }
        return coder.serializedBytes
    }

    /// Encodes the certificates of a PEM bundle (e.g. issuing CA then root) as a certs-only message (DER).
    public static func encode(pem: String, source: String) throws -> [UInt8] {
        let certificates = try PEMInput.documents(Array(pem.utf8), labels: ["CERTIFICATE"], what: source)
        return try encode(certificatesDER: certificates)
    }

    /// Decodes a certs-only message (DER) into the DER of the certificates it carries, in encoding order.
    /// - Throws: `.badInput` for anything that is not a SignedData with at least one certificate.
    public static func decode(_ der: [UInt8]) throws -> [[UInt8]] {
        do {
            let root = try DER.parse(der)
            return try DER.sequence(root, identifier: .sequence) { nodes in
                guard try ASN1ObjectIdentifier(derEncoded: &nodes) == signedData else {
                    throw WardenError.badInput("the CMS message is not SignedData")
                }
                return try DER.explicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific) { node in
                    try DER.sequence(node, identifier: .sequence) { fields in
                        _ = try Int(derEncoded: &fields)
                        guard let digests = fields.next(), digests.identifier == .set,
                            let encapsulated = fields.next(), encapsulated.identifier == .sequence,
                            let certificates = fields.next(),
                            certificates.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific),
                            case .constructed(let children) = certificates.content
                        else { throw WardenError.badInput("the SignedData carries no certificates") }
                        while fields.next() != nil {}
                        let list = children.map { Array($0.encodedBytes) }
                        guard (1...maximumCertificates).contains(list.count) else {
                            throw WardenError.badInput("the SignedData carries \(list.count) certificates")
                        }
                        for certificate in list where (try? Certificate(derEncoded: certificate)) == nil {
                            throw WardenError.badInput("the SignedData carries something that is not a certificate")
                        }
                        return list
                    }
                }
            }
        } catch let error as WardenError {
            throw error
        } catch {
            throw WardenError.badInput("the certs-only message is not valid DER: \(error)")
        }
    }
}

/// PEM helpers for callers that must not import X509.
public enum CertificatePEM {
    /// The DER of every certificate in a PEM bundle (or of one DER certificate), in order.
    /// - Throws: `.badInput` naming `source` when a block is not a valid certificate.
    public static func derCertificates(_ bytes: [UInt8], source: String) throws -> [[UInt8]] {
        try PEMInput.certificates(bytes, what: source).map { try $0.derBytes() }
    }

    /// PEM text ("CERTIFICATE") for DER certificates.
    public static func pem(_ certificatesDER: [[UInt8]]) -> String {
        certificatesDER.map { PEMInput.pem($0, label: "CERTIFICATE") }.joined()
    }
}
