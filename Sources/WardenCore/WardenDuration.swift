import Foundation

/// A span of time written the way operators type it: `90d`, `20y`, `3h`, `45m`, `30s`, `2w`.
///
/// Years are 365 days and are meant for certificate lifetimes, where a calendar-exact year is not needed.
public struct WardenDuration: Hashable, Sendable, CustomStringConvertible {
    /// The length in seconds.
    public let seconds: Int64
    /// The text it was parsed from (or a canonical rendering).
    public let text: String

    /// Largest accepted value: 100 years. Anything longer is a typo, not a policy.
    public static let maximumSeconds: Int64 = 100 * 365 * 86_400

    /// Creates a duration from a number of seconds.
    public init(seconds: Int64) {
        self.seconds = seconds
        self.text = "\(seconds)s"
    }

    /// Parses `<positive integer><unit>` with unit one of `s m h d w y`.
    /// - Throws: ``WardenError`` `.badInput` naming the text.
    public init(parsing text: String) throws {
        guard let unit = text.last, let value = Int64(text.dropLast()), value > 0 else {
            throw WardenError.badInput("duration '\(text)' must be a positive whole number followed by s, m, h, d, w or y (e.g. 90d)")
        }
        let multiplier: Int64
        switch unit {
        case "s": multiplier = 1
        case "m": multiplier = 60
        case "h": multiplier = 3_600
        case "d": multiplier = 86_400
        case "w": multiplier = 7 * 86_400
        case "y": multiplier = 365 * 86_400
        default:
            throw WardenError.badInput("duration '\(text)' has unknown unit '\(unit)'; use s, m, h, d, w or y")
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow, product <= WardenDuration.maximumSeconds else {
            throw WardenError.badInput("duration '\(text)' is longer than 100 years")
        }
        self.seconds = product
        self.text = text
    }

    /// The duration as a Foundation time interval.
    public var timeInterval: TimeInterval { TimeInterval(seconds) }

    public var description: String { text }
}
