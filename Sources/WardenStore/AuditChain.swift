import Foundation
import WardenPKI

#if canImport(Glibc)
import Glibc
#endif

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

    /// The hash input: every field length-prefixed, so that no two different events share an encoding:
    /// `warden-audit-v1` then, for each field, `\n<UTF-8 length>:<UTF-8 bytes>` (a missing device id is one NUL).
    static func hashInput(
        seq: Int64, timestamp: String, actor: String, action: String, deviceID: String?, details: String,
        previousHash: String
    ) -> [UInt8] {
        let fields = [String(seq), timestamp, actor, action, deviceID ?? "\u{0}", details, previousHash]
        var out: [UInt8] = []
        out.reserveCapacity(15 + fields.reduce(0) { $0 + $1.utf8.count + 8 })
        out.append(contentsOf: "warden-audit-v1".utf8)
        for field in fields {
            out.append(0x0A)
            let count = field.utf8.count
            var divisor = 1
            while divisor * 10 <= count { divisor *= 10 }
            while divisor > 0 {
                out.append(0x30 + UInt8((count / divisor) % 10))
                divisor /= 10
            }
            out.append(0x3A)
            out.append(contentsOf: field.utf8)
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

/// Formats audit timestamps: `YYYY-MM-DDTHH:MM:SS.mmmZ`, always UTC, always this exact shape (the text is hashed).
enum AuditTime {
    /// Formats `date` by hand: this runs for every audit event, and Foundation's formatters cost ~100 µs each.
    static func string(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000)
        let millis = Int(milliseconds - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-" + pad(Int(parts.tm_mday), 2)
            + "T" + pad(Int(parts.tm_hour), 2) + ":" + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2)
            + "." + pad(millis, 3) + "Z"
    }
}

/// Canonical JSON for audit details: keys sorted, strings escaped per RFC 8259, no whitespace.
enum CanonicalJSON {
    static func encode(_ object: [String: String]) -> String {
        var out = "{"
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            if out.utf8.count > 1 { out += "," }
            out += quote(key)
            out += ":"
            out += quote(value)
        }
        return out + "}"
    }

    static func quote(_ text: String) -> String {
        // Most values (serials, fingerprints, ids, timestamps) need no escaping at all.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) { return "\"" + text + "\"" }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
