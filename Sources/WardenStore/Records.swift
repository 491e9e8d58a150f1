import Foundation
import WardenCore

/// Registry status of a device.
public enum DeviceStatus: String, Codable, Sendable, CaseIterable {
    /// Enrolled and allowed to connect.
    case active
    /// Revoked: its certificates are on the CRL and it is refused everywhere.
    case revoked
}

/// A device as the registry knows it.
public struct DeviceRecord: Codable, Sendable, Equatable {
    /// The device id (CN of its certificates).
    public var id: String
    /// Registry status.
    public var status: DeviceStatus
    /// Groups, sorted, for policy.
    public var groups: [String]
    /// When it was first enrolled.
    public var createdAt: Date
    /// Last change of status or certificate.
    public var updatedAt: Date
    /// When it was revoked, if it was.
    public var revokedAt: Date?
    /// Fingerprint of the public key of its current certificate.
    public var publicKeyFingerprint: String
    /// Serial of its current certificate.
    public var currentSerial: String
    /// Expiry of its current certificate.
    public var certificateNotAfter: Date
}

/// A certificate the registry recorded.
public struct CertificateRecord: Codable, Sendable, Equatable {
    /// Serial number, lowercase hex.
    public var serial: String
    /// The device it was issued to.
    public var deviceID: String
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// When it was issued.
    public var issuedAt: Date
    /// SHA-256 of the subject public key bits.
    public var publicKeyFingerprint: String
    /// SHA-256 of the DER.
    public var sha256: String
    /// The DER certificate.
    public var der: Data
    /// Revocation reason code (RFC 5280 §5.3.1) if revoked.
    public var revocationReason: Int?
    /// When it was revoked.
    public var revokedAt: Date?
}

/// What the registry needs to record a newly issued device certificate.
public struct Enrollment: Sendable {
    /// The device.
    public var deviceID: DeviceID
    /// Groups for policy (deduplicated and sorted on write).
    public var groups: [String]
    /// Serial, lowercase hex.
    public var serial: String
    /// DER certificate.
    public var der: [UInt8]
    /// Validity.
    public var notBefore: Date
    /// Validity.
    public var notAfter: Date
    /// Subject public key fingerprint.
    public var publicKeyFingerprint: String
    /// SHA-256 of the DER.
    public var sha256: String

    /// Creates an enrollment record.
    public init(
        deviceID: DeviceID, groups: [String], serial: String, der: [UInt8], notBefore: Date, notAfter: Date,
        publicKeyFingerprint: String, sha256: String
    ) {
        self.deviceID = deviceID
        self.groups = groups
        self.serial = serial
        self.der = der
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.publicKeyFingerprint = publicKeyFingerprint
        self.sha256 = sha256
    }
}

/// A revoked certificate as the CRL needs it.
public struct RevocationEntry: Sendable, Equatable {
    /// Serial, lowercase hex.
    public var serial: String
    /// When.
    public var revokedAt: Date
    /// RFC 5280 reason code.
    public var reasonCode: Int
}
