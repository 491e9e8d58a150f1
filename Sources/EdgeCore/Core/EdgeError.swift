/// An error raised by the edge core.
///
/// Errors are values with a stable ``Code``; equality compares only the code, so tests can match on
/// the kind of failure while the message stays free to name the offending input.
public struct EdgeError: Error, Hashable, CustomStringConvertible, Sendable {
    /// The stable kind of an ``EdgeError``.
    public enum Code: String, Sendable, Hashable {
        /// A pipeline configuration document is malformed or inconsistent.
        case invalidConfig
        /// Recorded input (CSV) is malformed or exceeds a size limit.
        case invalidInput
        /// A file system operation failed (the message carries the errno text).
        case io
        /// The queue's disk budget is exhausted and nothing more can be shed.
        case queueFull
        /// The storage refused writes (read-only, no space, file too large).
        case storageUnavailable
        /// A stored record or metadata file failed its integrity check.
        case corrupt
        /// A compressed block is malformed.
        case invalidCompressedData
    }

    /// The stable kind of failure.
    public let code: Code
    /// One sentence naming the input at fault.
    public let message: String

    /// Creates an error with a code and a one-sentence message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, suitable for a one-line report on stderr.
    public var description: String { message }

    /// Errors compare equal when their codes are equal.
    public static func == (lhs: EdgeError, rhs: EdgeError) -> Bool { lhs.code == rhs.code }

    /// Hashes the code only, consistent with ``==(_:_:)``.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
