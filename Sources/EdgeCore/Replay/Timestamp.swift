/// Parses timestamps of recorded input: epoch seconds or ISO 8601 with a zone.
public enum Timestamp {
    /// Latest accepted time (2200-01-01T00:00:00Z), seconds since the epoch.
    public static let maxEpoch = 7_258_118_400.0
    /// Earliest accepted ISO 8601 time (1900-01-01T00:00:00Z); epoch-second input must be ≥ 0.
    public static let minISO = -2_208_988_800.0

    /// Parses `text` as epoch seconds (`1700000000`, `1700000000.25`, 0…``maxEpoch``) or as ISO 8601
    /// (`2024-03-01T12:00:00Z`, `2024-03-01T12:00:00.5+01:00`). Returns nil when it is neither.
    public static func parse(_ text: Substring) -> Double? {
        if let d = parseDecimal(text) {
            return d >= 0 && d <= maxEpoch ? d : nil
        }
        return parseISO8601(Array(text.utf8))
    }

    /// Parses a plain decimal number (digits, one optional sign, point and exponent). Rejects
    /// `nan`, `inf`, hexadecimal and empty text, which `Double(_:)` would accept.
    public static func parseDecimal(_ text: Substring) -> Double? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        var sawDigit = false
        for c in text.utf8 {
            switch c {
            case 0x30...0x39: sawDigit = true
            case 0x2B, 0x2D, 0x2E, 0x45, 0x65: continue
            default: return nil
            }
        }
        guard sawDigit, let d = Double(text), d.isFinite else { return nil }
        return d
    }

    private static func number(_ b: [UInt8], _ from: Int, _ count: Int) -> Int? {
        guard from + count <= b.count else { return nil }
        var n = 0
        for i in from..<(from + count) {
            let c = b[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            n = n * 10 + Int(c - 0x30)
        }
        return n
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func parseISO8601(_ b: [UInt8]) -> Double? {
        // YYYY-MM-DDTHH:MM:SS
        guard b.count >= 20, b.count <= 40, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x74,
            b[13] == 0x3A, b[16] == 0x3A,
            let year = number(b, 0, 4), let month = number(b, 5, 2), let day = number(b, 8, 2),
            let hour = number(b, 11, 2), let minute = number(b, 14, 2), let second = number(b, 17, 2)
        else { return nil }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), day >= 1, day <= monthDays[month - 1], hour < 24, minute < 60, second < 60
        else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count && (b[i] == 0x2E || b[i] == 0x2C) {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start, i - start <= 9 else { return nil }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            let sign = b[i] == 0x2D ? -1 : 1
            guard let oh = number(b, i + 1, 2), oh < 24 else { return nil }
            var om = 0
            if i + 3 < b.count && b[i + 3] == 0x3A {
                guard let m = number(b, i + 4, 2) else { return nil }
                om = m
                i += 6
            } else {
                guard let m = number(b, i + 3, 2) else { return nil }
                om = m
                i += 5
            }
            guard om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year, month, day)
        let t = Double(days * 86_400 + hour * 3600 + minute * 60 + second - offset) + fraction
        return t >= minISO && t <= maxEpoch ? t : nil
    }
}
