import Foundation
import WardenPKI

/// One event of the tamper-evident audit log.
public struct AuditEvent: Codable, Sendable, Equatable {
    /// Position in the chain, from 1, without gaps.
    public var seq: Int64
    /// When, as ISO 8601 UTC with milliseconds (stored as text so the hash input is exact).
    public var timestamp: String
    /// Who: `cli:<user>` or a service identity.
    public var actor: String
    /// What: `ca.init`, `device.enroll`, `device.revoke`, `crl.issue`, ...
    public var action: String
    /// The device concerned, if any.
    public var deviceID: String?
    /// Details as a JSON object with sorted keys.
    public var details: String
    /// Hash of the previous event (64 zeros for the first).
    public var previousHash: String
    /// SHA-256 over this event's fields and ``previousHash``.
    public var hash: String

    /// The hash input: every field length-prefixed, so that no two different events share an encoding.
    static func hashInput(
        seq: Int64, timestamp: String, actor: String, action: String, deviceID: String?, details: String,
        previousHash: String
    ) -> [UInt8] {
        var out = Array("warden-audit-v1".utf8)
        for field in [String(seq), timestamp, actor, action, deviceID ?? "\u{0}", details, previousHash] {
            let bytes = Array(field.utf8)
            out.append(contentsOf: Array("\n\(bytes.count):".utf8))
            out.append(contentsOf: bytes)
        }
        return out
    }

    /// Computes the hash this event must carry.
    var expectedHash: String {
        Digest.hex(
            Digest.sha256(
                Self.hashInput(
                    seq: seq, timestamp: timestamp, actor: actor, action: action, deviceID: deviceID,
                    details: details, previousHash: previousHash)))
    }

    /// The hash of "no previous event".
    static let genesisHash = String(repeating: "0", count: 64)
}

/// Result of `audit verify`.
public enum AuditVerification: Sendable, Equatable {
    /// Every event links to the previous one and the head matches.
    case intact(events: Int64, head: String)
    /// The first event at which the chain breaks, and why.
    case broken(seq: Int64, reason: String)
}

/// Formats audit timestamps.
enum AuditTime {
    static func string(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}

/// Canonical JSON for audit details: sorted keys, no escaped slashes.
enum CanonicalJSON {
    static func encode(_ object: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(object), as: UTF8.self)) ?? "{}"
    }
}
