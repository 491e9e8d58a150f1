import Foundation
import SwiftASN1
import X509

/// What an operator wants to know about a certificate, free of X.509 library types.
public struct CertificateSummary: Codable, Sendable, Equatable {
    /// RFC 4514 rendering of the subject.
    public let subject: String
    /// RFC 4514 rendering of the issuer.
    public let issuer: String
    /// Serial number, lowercase hex.
    public let serial: String
    /// Start of validity.
    public let notBefore: Date
    /// End of validity.
    public let notAfter: Date
    /// SHA-256 of the DER certificate, lowercase hex.
    public let sha256Fingerprint: String

    init(_ certificate: Certificate) throws {
        subject = certificate.subject.description
        issuer = certificate.issuer.description
        serial = Digest.hex(certificate.serialNumber.bytes)
        notBefore = certificate.notValidBefore
        notAfter = certificate.notValidAfter
        sha256Fingerprint = Digest.hex(Digest.sha256(try certificate.derBytes()))
    }
}

extension Certificate {
    /// The certificate's DER bytes.
    func derBytes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return serializer.serializedBytes
    }
}
