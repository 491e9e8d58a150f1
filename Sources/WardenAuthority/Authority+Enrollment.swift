import Foundation
import WardenCore
import WardenPKI
import WardenStore

extension Authority {
    /// Default lifetime of a bootstrap token.
    public static let defaultTokenLifetime = WardenDuration(seconds: 24 * 3_600)

    /// Issues a one-time EST bootstrap token for a device that is not enrolled yet. The token (32 random bytes,
    /// base64url) is returned once; only its SHA-256 is stored.
    public func issueBootstrapToken(_ deviceID: DeviceID, lifetime: WardenDuration = defaultTokenLifetime, now: Date) throws -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        try registry.storeBootstrapToken(
            deviceID, tokenSHA256: Self.tokenHash(token), expiresAt: now.addingTimeInterval(lifetime.timeInterval), actor: actor,
            now: now)
        return token
    }

    /// SHA-256 hex of a token as presented.
    static func tokenHash(_ token: String) -> String { Digest.hex(Digest.sha256(Array(token.utf8))) }

    /// EST `/simpleenroll` (RFC 7030 §4.2.1) for a device presenting its bootstrap token: validate the CSR, issue,
    /// and record the enrollment while consuming the token, in one transaction.
    public func enrollWithToken(
        _ deviceID: DeviceID, token: String, csr: [UInt8], groups: [String] = [], now: Date
    ) throws -> IssuedCertificate {
        let validated = try ca.validateCSR(csr, deviceID: deviceID, source: "EST request for \(deviceID)")
        let tokenSHA256 = Self.tokenHash(token)
        let (issued, outcome) = try issueAndRecord(validated, validity: nil, groups: groups, now: now) { _, enrollment in
            try registry.recordWithToken(enrollment, tokenSHA256: tokenSHA256, actor: actor, now: now)
        }
        guard outcome == .enrolled else { throw WardenError.alreadyExists("device '\(deviceID)' is already enrolled") }
        return issued
    }

    /// EST `/simplereenroll` (RFC 7030 §4.2.2): an active device, authenticated by its current certificate
    /// (`currentSerial`), gets a new certificate for the key in `csr` (same or new key).
    public func renew(_ deviceID: DeviceID, currentSerial: String, csr: [UInt8], now: Date) throws -> IssuedCertificate {
        let validated = try ca.validateCSR(csr, deviceID: deviceID, source: "EST re-enroll request for \(deviceID)")
        let (issued, outcome) = try issueAndRecord(validated, validity: nil, groups: [], now: now) { _, enrollment in
            try registry.recordRenewal(enrollment, previousSerial: currentSerial, actor: actor, now: now)
        }
        guard outcome == .enrolled else { throw WardenError.internal("unexpected renewal outcome \(outcome)") }
        return issued
    }
}
