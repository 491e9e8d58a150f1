import Foundation
import WardenCore

#if canImport(Glibc)
import Glibc
#endif

/// Writing to the terminal: results to stdout, diagnostics to stderr, JSON for machines.
enum Console {
    /// Writes `text` to standard error.
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Writes `text` to standard error without a newline (progress bars).
    static func progress(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Writes `text` to standard output.
    static func out(_ text: String, terminator: String = "\n") {
        FileHandle.standardOutput.write(Data((text + terminator).utf8))
    }

    /// Whether standard error is a terminal (progress bars only go there).
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    /// Pretty, sorted, ISO 8601 JSON.
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// ISO 8601 rendering of a date, UTC, seconds.
    static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// Writes `text` to `path` atomically (mode `mode`), or to stdout when `path` is nil or `-`.
    static func emit(_ text: String, to path: String?, mode: mode_t = 0o644) throws {
        if let path, path != "-" {
            try SecureFile.writeAtomically(Array(text.utf8), to: path, mode: mode)
        } else {
            out(text, terminator: "")
        }
    }
}

/// Process exit statuses, the same for every command.
public enum ExitStatus: Int32, Sendable {
    /// Success.
    case ok = 0
    /// The input was understood and refused or found invalid (verification failure, policy, conflict).
    case refused = 1
    /// Bad input: unreadable or malformed files, unknown ids, wrong passphrase.
    case badInput = 2
    /// Storage or internal failure.
    case failure = 3

    /// The status for a Warden error.
    static func of(_ error: WardenError) -> ExitStatus {
        switch error.code {
        case .badInput, .notFound, .wrongPassphrase: return .badInput
        case .policyViolation, .alreadyExists, .signatureInvalid, .verificationFailed, .auditChainBroken: return .refused
        case .storage, .internal: return .failure
        }
    }
}
