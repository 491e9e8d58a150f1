import SwiftASN1
import WardenCore

/// One parsed OCSP request (RFC 6960 §4.1.1), reduced to what a responder needs.
///
/// ```
/// OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
/// TBSRequest  ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT GeneralName OPTIONAL,
///                            requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
/// Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
/// CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
///                            issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
/// ```
struct OCSPParsedRequest {
    /// One CertID.
    struct CertID {
        /// The exact DER of the CertID, echoed in the SingleResponse (RFC 6960 §4.2.1).
        var der: [UInt8]
        /// The hash algorithm OID.
        var hashAlgorithm: ASN1ObjectIdentifier
        var issuerNameHash: [UInt8]
        var issuerKeyHash: [UInt8]
        /// The serial's magnitude, big-endian, no leading zero bytes.
        var serial: [UInt8]
    }

    var certIDs: [CertID]
    /// The nonce Extension (RFC 8954) exactly as sent, to be echoed in the response.
    var nonceExtensionDER: [UInt8]?

    /// The largest request accepted, in bytes.
    static let maximumBytes = 16 * 1024
    /// Most CertIDs in one request.
    static let maximumCertIDs = 32
    static let nonceOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 2]

    /// Parses `der` strictly; any structural problem is a `.badInput` error (answered with malformedRequest).
    init(der: [UInt8]) throws {
        guard !der.isEmpty, der.count <= Self.maximumBytes else {
            throw WardenError.badInput("the OCSP request is empty or larger than \(Self.maximumBytes) bytes")
        }
        let root: ASN1Node
        do {
            root = try DER.parse(der)
        } catch {
            throw WardenError.badInput("the OCSP request is not valid DER")
        }
        let top = try Self.children(root, .sequence, "OCSPRequest")
        guard (1...2).contains(top.count) else { throw WardenError.badInput("OCSPRequest has \(top.count) fields") }
        if top.count == 2 {
            guard top[1].identifier == Self.context(0) else { throw WardenError.badInput("OCSPRequest has an unexpected field") }
        }
        var fields = try Self.children(top[0], .sequence, "TBSRequest")[...]
        if let first = fields.first, first.identifier == Self.context(0) {
            let version = try Self.children(first, Self.context(0), "version")
            guard version.count == 1, (try? Int(derEncoded: version[0])) == 0 else {
                throw WardenError.badInput("the OCSP request version is not v1")
            }
            fields = fields.dropFirst()
        }
        if let first = fields.first, first.identifier == Self.context(1) { fields = fields.dropFirst() }  // requestorName
        guard let list = fields.first else { throw WardenError.badInput("the OCSP request has no requestList") }
        fields = fields.dropFirst()
        let requests = try Self.children(list, .sequence, "requestList")
        guard (1...Self.maximumCertIDs).contains(requests.count) else {
            throw WardenError.badInput("the OCSP request lists \(requests.count) certificates (1 to \(Self.maximumCertIDs) accepted)")
        }
        certIDs = try requests.map { request in
            let parts = try Self.children(request, .sequence, "Request")
            guard let certID = parts.first, parts.count <= 2 else { throw WardenError.badInput("a Request is malformed") }
            if parts.count == 2, parts[1].identifier != Self.context(0) { throw WardenError.badInput("a Request has an unexpected field") }
            return try Self.certID(certID)
        }
        nonceExtensionDER = nil
        if let extensionsNode = fields.first {
            guard extensionsNode.identifier == Self.context(2), fields.count == 1 else {
                throw WardenError.badInput("the OCSP request has unexpected fields after requestList")
            }
            let wrapped = try Self.children(extensionsNode, Self.context(2), "requestExtensions")
            guard wrapped.count == 1 else { throw WardenError.badInput("requestExtensions is malformed") }
            for ext in try Self.children(wrapped[0], .sequence, "Extensions") {
                let parts = try Self.children(ext, .sequence, "Extension")
                guard (2...3).contains(parts.count), let oid = try? ASN1ObjectIdentifier(derEncoded: parts[0]) else {
                    throw WardenError.badInput("a request extension is malformed")
                }
                guard oid == Self.nonceOID else { continue }  // other non-critical extensions are ignored (RFC 6960 §4.4)
                guard let value = parts.last, let octets = try? ASN1OctetString(derEncoded: value) else {
                    throw WardenError.badInput("the nonce extension is malformed")
                }
                // RFC 8954 §2.1: the nonce is an OCTET STRING of 1 to 32 octets inside extnValue; lengths 0 or
                // over 64 MUST be rejected with malformedRequest.
                let inner = (try? ASN1OctetString(derEncoded: Array(octets.bytes)))?.bytes.count ?? octets.bytes.count
                guard (1...64).contains(inner) else { throw WardenError.badInput("the nonce is \(inner) octets long") }
                nonceExtensionDER = Array(ext.encodedBytes)
            }
        }
    }

    static func certID(_ node: ASN1Node) throws -> CertID {
        let parts = try children(node, .sequence, "CertID")
        guard parts.count == 4 else { throw WardenError.badInput("a CertID has \(parts.count) fields, not 4") }
        let algorithm = try children(parts[0], .sequence, "hashAlgorithm")
        guard (1...2).contains(algorithm.count), let oid = try? ASN1ObjectIdentifier(derEncoded: algorithm[0]) else {
            throw WardenError.badInput("a CertID hash algorithm is malformed")
        }
        guard let nameHash = try? ASN1OctetString(derEncoded: parts[1]), let keyHash = try? ASN1OctetString(derEncoded: parts[2]),
            let serial = try? ArraySlice<UInt8>(derEncoded: parts[3])
        else { throw WardenError.badInput("a CertID field is malformed") }
        return CertID(
            der: Array(node.encodedBytes), hashAlgorithm: oid, issuerNameHash: Array(nameHash.bytes),
            issuerKeyHash: Array(keyHash.bytes), serial: Array(serial.drop { $0 == 0 }))
    }

    static func context(_ number: UInt) -> ASN1Identifier { ASN1Identifier(tagWithNumber: number, tagClass: .contextSpecific) }

    /// The children of a constructed node with the expected identifier.
    static func children(_ node: ASN1Node, _ identifier: ASN1Identifier, _ what: String) throws -> [ASN1Node] {
        guard node.identifier == identifier, case .constructed(let children) = node.content else {
            throw WardenError.badInput("\(what) in the OCSP request is not a \(identifier)")
        }
        return Array(children)
    }
}
