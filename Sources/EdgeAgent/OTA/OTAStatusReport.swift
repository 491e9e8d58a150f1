import Foundation
import WardenCore
import WardenPKI

/// Builds the signed installation status report of `firmware/OTA-PROTOCOL.md` §9:
///
///     {"body": "<base64 of the body bytes>", "signature": "<base64 of the signature over exactly those bytes>"}
///     body: {"device": "<id>", "rollout": <id>, "state": "downloading|succeeded|failed", "reason": "…", "time": <unix s>}
///
/// signed with the device's own private key (`device.key`), which the authority verifies against the device's
/// current certificate.
public enum OTAStatusReport {
    /// Longest reason sent (the authority keeps 200 characters).
    public static let maximumReason = 200

    /// The report payload for `report`, dated `now`.
    /// - Throws: ``WardenError`` if the key cannot be read or used.
    public static func payload(device: DeviceID, report: OTAPendingReport, keyPath: String, now: Date = Date()) throws -> [UInt8] {
        var body: [String: Any] = [
            "device": device.rawValue, "rollout": report.rollout, "state": report.state, "time": Int64(now.timeIntervalSince1970),
        ]
        if let reason = report.reason { body["reason"] = String(reason.prefix(maximumReason)) }
        let bodyBytes = Array(try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]))
        let pem = try SecureFile.readText(keyPath, limit: 64 * 1024, what: "device key")
        let signature = try DeviceKeySigner.sign(bodyBytes, privateKeyPEM: pem)
        let envelope = [
            "body": Data(bodyBytes).base64EncodedString(), "signature": Data(signature).base64EncodedString(),
        ]
        return Array(try JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys]))
    }
}
