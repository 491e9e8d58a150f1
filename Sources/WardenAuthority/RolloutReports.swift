import Foundation
import WardenCore
import WardenPKI
import WardenStore

/// Device status reports for rollouts, signed with the device's own key (`d/<id>/up/ota/status`):
///
///     {"body": "<base64 of the body JSON>", "signature": "<base64 signature of those body bytes>"}
///     body: {"device": "<id>", "rollout": <id>, "state": "downloading|succeeded|failed", "reason": "…", "time": <unix s>}
///
/// The signature is ECDSA (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512; DER) or Ed25519 over the exact body bytes,
/// verified with the public key of the device's current certificate in the registry.
extension Authority {
    /// Largest report accepted, in bytes.
    public static let maximumReportSize = 4096
    /// How far a report's time may be from the authority's clock.
    public static let reportClockSkew: TimeInterval = 300

    struct SignedReport: Decodable {
        var body: String
        var signature: String
    }

    struct ReportBody: Decodable {
        var device: String
        var rollout: Int64
        var state: String
        var reason: String?
        var time: Double
    }

    /// Verifies a signed status report received on `d/<device>/up/ota/status` and records it (see
    /// ``recordRolloutReport(device:state:reason:now:)``).
    /// - Throws: ``WardenError`` `.badInput` for a malformed or stale report, `.signatureInvalid` if the signature
    ///   does not verify with the device's current certificate, `.notFound` if the device has no such assignment.
    @discardableResult
    public func acceptSignedReport(device: String, payload: [UInt8], now: Date) throws -> RolloutRecord {
        guard payload.count <= Self.maximumReportSize else { throw WardenError.badInput("status report of \(device) is larger than \(Self.maximumReportSize) bytes") }
        guard let envelope = try? JSONDecoder().decode(SignedReport.self, from: Data(payload)),
              let bodyBytes = Data(base64Encoded: envelope.body), let signature = Data(base64Encoded: envelope.signature),
              let body = try? JSONDecoder().decode(ReportBody.self, from: bodyBytes)
        else { throw WardenError.badInput("status report of \(device) is not a signed report") }
        guard body.device == device else { throw WardenError.badInput("status report on \(device)'s topic names device '\(body.device)'") }
        guard let record = try registry.device(device), record.status == .active,
              let certificate = try registry.certificates(of: device).first(where: { $0.serial == record.currentSerial })
        else { throw WardenError.notFound("device \(device) is not active") }
        guard DeviceSignature.verify(signature: Array(signature), over: Array(bodyBytes), certificateDER: Array(certificate.der)) else {
            throw WardenError(.signatureInvalid, "status report of \(device) is not signed by its current key")
        }
        guard abs(body.time - now.timeIntervalSince1970) <= Self.reportClockSkew else {
            throw WardenError.badInput("status report of \(device) is dated \(Int(body.time)), too far from now")
        }
        guard let state = RolloutDeviceState(rawValue: body.state) else { throw WardenError.badInput("status report state '\(body.state)' is unknown") }
        guard let assignment = try registry.currentAssignment(device: device), assignment.rollout.id == body.rollout else {
            throw WardenError.notFound("device \(device) has no current assignment in rollout \(body.rollout)")
        }
        return try recordRolloutReport(device: device, state: state, reason: body.reason, now: now)
    }
}
