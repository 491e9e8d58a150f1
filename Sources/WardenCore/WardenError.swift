/// An error raised anywhere in Warden, with a stable machine-readable code and one human sentence.
///
/// Modelled on swift-certificates' `CertificateError`: equality compares only the code, so tests can
/// match on the kind of failure without depending on the wording of the message.
public struct WardenError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The stable category of the error. New codes are appended; existing ones never change meaning.
    public enum Code: String, Sendable, CaseIterable {
        /// Malformed or unreadable input (file, PEM, CSV, argument value).
        case badInput = "bad_input"
        /// Input that parsed but is refused by policy (weak key, reserved name, CN mismatch).
        case policyViolation = "policy_violation"
        /// The passphrase does not decrypt a key.
        case wrongPassphrase = "wrong_passphrase"
        /// A required thing (CA, device, file) does not exist.
        case notFound = "not_found"
        /// The thing being created already exists (CA, device id).
        case alreadyExists = "already_exists"
        /// A signature did not verify.
        case signatureInvalid = "signature_invalid"
        /// A certificate chain failed validation.
        case verificationFailed = "verification_failed"
        /// The tamper-evident audit chain is broken.
        case auditChainBroken = "audit_chain_broken"
        /// Storage (database, filesystem) failed.
        case storage = "storage"
        /// An invariant inside Warden did not hold; a bug.
        case `internal` = "internal"
    }

    /// The stable category.
    public let code: Code
    /// One sentence for a human, naming the input at fault.
    public let message: String

    /// Creates an error with a code and a one-sentence message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func == (lhs: WardenError, rhs: WardenError) -> Bool { lhs.code == rhs.code }

    /// Convenience constructors, one per code.
    public static func badInput(_ message: String) -> WardenError { .init(.badInput, message) }
    /// See ``Code/policyViolation``.
    public static func policy(_ message: String) -> WardenError { .init(.policyViolation, message) }
    /// See ``Code/notFound``.
    public static func notFound(_ message: String) -> WardenError { .init(.notFound, message) }
    /// See ``Code/alreadyExists``.
    public static func alreadyExists(_ message: String) -> WardenError { .init(.alreadyExists, message) }
    /// See ``Code/storage``.
    public static func storage(_ message: String) -> WardenError { .init(.storage, message) }
    /// See ``Code/internal``.
    public static func `internal`(_ message: String) -> WardenError { .init(.internal, message) }
}
