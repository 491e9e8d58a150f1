import Foundation
import WardenCore

/// The `expires` timestamps of TUF metadata: `YYYY-MM-DDTHH:MM:SSZ` in UTC (TUF 1.0 §4.2), the exact form
/// python-tuf reads and writes.
public enum TUFTime {
    /// Renders `date` (whole seconds, UTC).
    public static func format(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }

    /// Parses the exact form `YYYY-MM-DDTHH:MM:SSZ`; anything else is refused.
    public static func parse(_ text: String) throws -> Date {
        let bytes = Array(text.utf8)
        let digitPositions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
        guard bytes.count == 20, bytes[4] == 0x2D, bytes[7] == 0x2D, bytes[10] == 0x54, bytes[13] == 0x3A, bytes[16] == 0x3A,
            bytes[19] == 0x5A, digitPositions.allSatisfy({ (0x30...0x39).contains(bytes[$0]) })
        else {
            throw WardenError.badInput("expiry '\(text.prefix(40))' is not of the form YYYY-MM-DDTHH:MM:SSZ")
        }
        func number(_ range: Range<Int>) -> Int32 { Int32(String(decoding: bytes[range], as: UTF8.self))! }
        var parts = tm()
        parts.tm_year = number(0..<4) - 1900
        parts.tm_mon = number(5..<7) - 1
        parts.tm_mday = number(8..<10)
        parts.tm_hour = number(11..<13)
        parts.tm_min = number(14..<16)
        parts.tm_sec = number(17..<19)
        guard (0...11).contains(parts.tm_mon), (1...31).contains(parts.tm_mday), parts.tm_hour < 24, parts.tm_min < 60,
            parts.tm_sec < 61
        else {
            throw WardenError.badInput("expiry '\(text)' is not a valid date")
        }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }
}
