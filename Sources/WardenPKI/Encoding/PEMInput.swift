import SwiftASN1
import WardenCore
import X509

/// Strict decoding of PEM or DER inputs, with messages that name the input.
enum PEMInput {
    /// Splits `bytes` into the PEM documents it contains, or returns the bytes as one DER document when
    /// they do not look like PEM. Only the labels in `labels` are accepted.
    static func documents(_ bytes: [UInt8], labels: Set<String>, what: String) throws -> [[UInt8]] {
        guard !bytes.isEmpty else { throw WardenError.badInput("\(what) is empty") }
        // DER starts with a SEQUENCE tag; PEM is text.
        if bytes[0] == 0x30 { return [bytes] }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw WardenError.badInput("\(what) is neither PEM text nor DER")
        }
        let parsed: [PEMDocument]
        do {
            parsed = try PEMDocument.parseMultiple(pemString: text)
        } catch {
            throw WardenError.badInput("\(what) is not valid PEM (truncated or corrupted)")
        }
        guard !parsed.isEmpty else { throw WardenError.badInput("\(what) contains no PEM block") }
        return try parsed.map { document in
            guard labels.contains(document.discriminator) else {
                throw WardenError.badInput(
                    "\(what) contains a '\(document.discriminator)' block; expected \(labels.sorted().joined(separator: " or "))")
            }
            return document.derBytes
        }
    }

    /// Decodes every certificate in a PEM bundle (or one DER certificate).
    static func certificates(_ bytes: [UInt8], what: String) throws -> [Certificate] {
        try documents(bytes, labels: ["CERTIFICATE"], what: what).enumerated().map { index, der in
            do {
                return try Certificate(derEncoded: der)
            } catch {
                throw WardenError.badInput("\(what): certificate #\(index + 1) is not a valid X.509 certificate")
            }
        }
    }

    /// PEM text for a DER document.
    static func pem(_ der: [UInt8], label: String) -> String {
        PEMDocument(type: label, derBytes: der).pemString + "\n"
    }
}
