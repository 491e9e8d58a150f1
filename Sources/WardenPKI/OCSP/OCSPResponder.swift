import Crypto
import Foundation
import SwiftASN1
import WardenCore
import X509

/// What the registry says about one certificate, as an OCSP responder reports it (RFC 6960 §2.2).
public enum OCSPCertificateStatus: Sendable, Equatable {
    /// Issued by this CA and not revoked.
    case good
    /// Revoked at `time`, with an optional RFC 5280 reason.
    case revoked(time: Date, reason: RevocationReason?)
    /// Not a certificate this CA knows about.
    case unknown
}

/// An OCSP responder (RFC 6960) for one issuing CA, which signs its responses itself (RFC 6960 §4.2.2.2, case 1):
/// responder ID by key hash, the issuing CA certificate included in `certs`, thisUpdate = now, nextUpdate =
/// now + ``validity`` (at most one hour), the request nonce (RFC 8954) echoed.
///
/// It works on bytes only, so servers need no ASN.1 library: ``respond(to:now:status:)`` never throws and always
/// returns a DER OCSPResponse, `malformedRequest` for anything it cannot parse.
public struct OCSPResponder: Sendable {
    let issuer: Certificate
    let issuerKey: Certificate.PrivateKey
    /// How long a response may be cached (nextUpdate − thisUpdate).
    public let validity: TimeInterval
    /// The largest validity accepted: one hour, so a revocation reaches OCSP clients within an hour at worst.
    public static let maximumValidity: TimeInterval = 3_600

    /// The OCSPResponseStatus values of RFC 6960 §4.2.1.
    public enum ResponseStatus: Int, Sendable {
        /// Response has valid confirmations.
        case successful = 0
        /// Illegal confirmation request.
        case malformedRequest = 1
        /// Internal error in issuer.
        case internalError = 2
        /// Try again later.
        case tryLater = 3
        /// Must sign the request.
        case sigRequired = 5
        /// Request unauthorized (not for a CA this responder serves).
        case unauthorized = 6
    }

    init(issuer: Certificate, issuerKey: Certificate.PrivateKey, validity: TimeInterval) {
        self.issuer = issuer
        self.issuerKey = issuerKey
        self.validity = min(max(validity, 60), Self.maximumValidity)
    }

    /// Answers a DER OCSPRequest. `status` is asked once per requested certificate of this issuer, with the serial in
    /// lowercase hex (as the registry stores it); if it throws, the answer is `internalError`. Requests for another
    /// issuer get `unknown` (or `unauthorized` when none is for this issuer).
    public func respond(to requestDER: [UInt8], now: Date, status: (String) throws -> OCSPCertificateStatus) -> [UInt8] {
        let request: OCSPParsedRequest
        do {
            request = try OCSPParsedRequest(der: requestDER)
        } catch {
            return Self.unsuccessful(.malformedRequest)
        }
        do {
            var answers: [(certID: [UInt8], status: OCSPCertificateStatus)] = []
            var anyForUs = false
            for certID in request.certIDs {
                if try isIssuedByUs(certID), !certID.serial.isEmpty {
                    anyForUs = true
                    answers.append((certID.der, try status(Digest.hex(certID.serial))))
                } else {
                    answers.append((certID.der, .unknown))
                }
            }
            guard anyForUs else { return Self.unsuccessful(.unauthorized) }
            return try signedResponse(answers, nonceExtension: request.nonceExtensionDER, now: now)
        } catch {
            return Self.unsuccessful(.internalError)
        }
    }

    /// A DER OCSPResponse with only a status (no responseBytes), e.g. `malformedRequest`.
    public static func unsuccessful(_ status: ResponseStatus) -> [UInt8] {
        // SEQUENCE { ENUMERATED status }: fixed five bytes.
        [0x30, 0x03, 0x0A, 0x01, UInt8(status.rawValue)]
    }

    // MARK: - CertID matching (RFC 6960 §4.1.1)

    static let sha1: ASN1ObjectIdentifier = [1, 3, 14, 3, 2, 26]
    static let sha256: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 1]
    static let sha384: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 2]
    static let sha512: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 3]

    static func hash(_ bytes: [UInt8], with algorithm: ASN1ObjectIdentifier) -> [UInt8]? {
        switch algorithm {
        case sha1: Array(Insecure.SHA1.hash(data: bytes))
        case sha256: Array(SHA256.hash(data: bytes))
        case sha384: Array(SHA384.hash(data: bytes))
        case sha512: Array(SHA512.hash(data: bytes))
        default: nil
        }
    }

    /// Whether the CertID names this issuer: hash of its subject DER and of its public key BIT STRING contents.
    func isIssuedByUs(_ certID: OCSPParsedRequest.CertID) throws -> Bool {
        guard let nameHash = Self.hash(try CertificateRevocationList.subjectDER(of: issuer), with: certID.hashAlgorithm),
            let keyHash = Self.hash(try Self.publicKeyBits(of: issuer), with: certID.hashAlgorithm)
        else { return false }
        return nameHash == certID.issuerNameHash && keyHash == certID.issuerKeyHash
    }

    /// The subjectPublicKey BIT STRING contents (without tag, length and unused-bits octet) of a certificate:
    /// swift-certificates' `subjectPublicKeyInfoBytes` is exactly that, despite its name.
    static func publicKeyBits(of certificate: Certificate) throws -> [UInt8] {
        Array(certificate.publicKey.subjectPublicKeyInfoBytes)
    }

    // MARK: - Response (RFC 6960 §4.2.1)

    static let basicResponseType: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1]

    func signedResponse(
        _ answers: [(certID: [UInt8], status: OCSPCertificateStatus)], nonceExtension: [UInt8]?, now: Date
    ) throws -> [UInt8] {
        let thisUpdate = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let nextUpdate = thisUpdate.addingTimeInterval(validity)
        let keyHash = Array(Insecure.SHA1.hash(data: try Self.publicKeyBits(of: issuer)))
        let signatureAlgorithm = try CertificateRevocationList.signatureAlgorithm(for: issuerKey)
        let algorithmIdentifier = try CertificateRevocationList.algorithmIdentifierDER(for: signatureAlgorithm)

        var tbs = DER.Serializer()
        // ResponseData; version is v1, its DEFAULT, so it is omitted.
        try tbs.appendConstructedNode(identifier: .sequence) { coder in
            // responderID byKey [2] EXPLICIT KeyHash: SHA-1 of the responder's public key bits.
            try coder.serialize(explicitlyTaggedWithTagNumber: 2, tagClass: .contextSpecific) { coder in
                try coder.serialize(ASN1OctetString(contentBytes: keyHash[...]))
            }
            try coder.serialize(try Self.generalizedTime(thisUpdate))  // producedAt
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                for answer in answers {
                    try coder.appendConstructedNode(identifier: .sequence) { coder in  // SingleResponse
                        coder.serializeRawBytes(answer.certID)
                        switch answer.status {
                        case .good:
                            coder.serializeRawBytes([0x80, 0x00])  // good [0] IMPLICIT NULL
                        case .unknown:
                            coder.serializeRawBytes([0x82, 0x00])  // unknown [2] IMPLICIT NULL
                        case .revoked(let time, let reason):
                            // revoked [1] IMPLICIT RevokedInfo
                            try coder.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)) { coder in
                                try coder.serialize(try Self.generalizedTime(time))
                                if let reason, reason != .unspecified {
                                    try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                                        try reason.rawValue.serialize(into: &coder, withIdentifier: .enumerated)
                                    }
                                }
                            }
                        }
                        try coder.serialize(try Self.generalizedTime(thisUpdate))
                        try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                            try coder.serialize(try Self.generalizedTime(nextUpdate))
                        }
                    }
                }
            }
            if let nonceExtension {
                coder.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) { coder in
                    coder.appendConstructedNode(identifier: .sequence) { coder in coder.serializeRawBytes(nonceExtension) }
                }
            }
        }
        let signature = try issuerKey.sign(bytes: tbs.serializedBytes, signatureAlgorithm: signatureAlgorithm)

        var basic = DER.Serializer()
        try basic.appendConstructedNode(identifier: .sequence) { coder in
            coder.serializeRawBytes(tbs.serializedBytes)
            coder.serializeRawBytes(algorithmIdentifier)
            try coder.serialize(ASN1BitString(bytes: ArraySlice(signature.rawRepresentation)))
            // certs [0] EXPLICIT: the signer, so clients can find its key without extra configuration.
            let issuerDER = try issuer.derBytes()
            coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                coder.appendConstructedNode(identifier: .sequence) { coder in coder.serializeRawBytes(issuerDER) }
            }
        }

        var response = DER.Serializer()
        try response.appendConstructedNode(identifier: .sequence) { coder in
            try ResponseStatus.successful.rawValue.serialize(into: &coder, withIdentifier: .enumerated)
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { coder in
                try coder.appendConstructedNode(identifier: .sequence) { coder in
                    try coder.serialize(Self.basicResponseType)
                    try coder.serialize(ASN1OctetString(contentBytes: basic.serializedBytes[...]))
                }
            }
        }
        return response.serializedBytes
    }

    private static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? .current
        return calendar
    }()

    /// GeneralizedTime in whole seconds, Zulu (RFC 5280 §4.1.2.5.2, as RFC 6960 §4.2.2.1 requires).
    static func generalizedTime(_ date: Date) throws -> GeneralizedTime {
        let whole = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
        let c = utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: whole)
        guard let year = c.year, let month = c.month, let day = c.day, let hour = c.hour, let minute = c.minute,
            let second = c.second
        else { throw WardenError.internal("cannot split \(date) into calendar fields") }
        return try GeneralizedTime(
            year: year, month: month, day: day, hours: hour, minutes: minute, seconds: second, fractionalSeconds: 0)
    }
}
