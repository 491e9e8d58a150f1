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
        if let der = singleCanonicalBlock(bytes, labels: labels) { return [der] }
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

    /// PEM text for a DER document (RFC 7468 §2: 64-character base64 lines), with a final newline.
    static func pem(_ der: [UInt8], label: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(der.count * 4 / 3 + der.count / 48 + 2 * label.utf8.count + 40)
        out.append(contentsOf: "-----BEGIN \(label)-----\n".utf8)
        var column = 0
        var index = 0
        while index < der.count {
            let count = min(3, der.count - index)
            let word = Int(der[index]) << 16 | (count > 1 ? Int(der[index + 1]) << 8 : 0) | (count > 2 ? Int(der[index + 2]) : 0)
            out.append(base64Alphabet[word >> 18 & 0x3F])
            out.append(base64Alphabet[word >> 12 & 0x3F])
            out.append(count > 1 ? base64Alphabet[word >> 6 & 0x3F] : 0x3D)
            out.append(count > 2 ? base64Alphabet[word & 0x3F] : 0x3D)
            index += 3
            column += 4
            if column == 64 || index >= der.count {
                out.append(0x0A)
                column = 0
            }
        }
        out.append(contentsOf: "-----END \(label)-----\n".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    static let base64Alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Value of each base64 character, 0xFF for anything else.
    static let base64Values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, character) in base64Alphabet.enumerated() { table[Int(character)] = UInt8(value) }
        return table
    }()

    /// The DER of `bytes` when they are exactly one PEM block with a label in `labels`, laid out canonically
    /// (RFC 7468 §2 strict: BEGIN line, base64 lines of 64 characters but the last, END line, LF or CRLF line ends,
    /// canonical padding); nil for anything else, which the general parser then handles and words the errors for.
    /// Everything accepted here is also accepted by that parser, with the same result.
    static func singleCanonicalBlock(_ bytes: [UInt8], labels: Set<String>) -> [UInt8]? {
        let begin = Array("-----BEGIN ".utf8)
        guard bytes.starts(with: begin) else { return nil }
        var position = begin.count
        guard let labelEnd = bytes[position...].firstIndex(of: 0x2D) else { return nil }
        let labelBytes = bytes[position..<labelEnd]
        guard let label = String(validating: labelBytes, as: UTF8.self), labels.contains(label) else { return nil }
        position = labelEnd

        /// Consumes `expected` at `position`, then a line end.
        func line(_ expected: [UInt8]) -> Bool {
            guard bytes[position...].starts(with: expected) else { return false }
            position += expected.count
            if position < bytes.count, bytes[position] == 0x0D { position += 1 }
            guard position < bytes.count, bytes[position] == 0x0A else { return false }
            position += 1
            return true
        }
        guard line(Array("-----".utf8)) else { return nil }
        var der: [UInt8] = []
        der.reserveCapacity(bytes.count * 3 / 4)
        var lastLine = false
        while position < bytes.count, bytes[position] != 0x2D {
            guard !lastLine else { return nil }
            var length = 0
            var quad: UInt32 = 0
            var padding = 0
            while position < bytes.count, bytes[position] != 0x0D, bytes[position] != 0x0A {
                let character = bytes[position]
                if character == 0x3D {
                    padding += 1
                    quad <<= 6
                } else {
                    let value = base64Values[Int(character)]
                    guard value != 0xFF, padding == 0 else { return nil }
                    quad = quad << 6 | UInt32(value)
                }
                length += 1
                position += 1
                if length % 4 == 0 {
                    der.append(UInt8(truncatingIfNeeded: quad >> 16))
                    if padding < 2 { der.append(UInt8(truncatingIfNeeded: quad >> 8)) } else if quad & 0xFFFF != 0 { return nil }
                    if padding < 1 { der.append(UInt8(truncatingIfNeeded: quad)) } else if quad & 0xFF != 0 { return nil }
                    quad = 0
                }
            }
            guard length > 0, length <= 64, length % 4 == 0, padding <= 2 else { return nil }
            if position < bytes.count, bytes[position] == 0x0D { position += 1 }
            guard position < bytes.count, bytes[position] == 0x0A else { return nil }
            position += 1
            if length < 64 || padding > 0 { lastLine = true }
        }
        let end = Array("-----END ".utf8) + Array(labelBytes) + Array("-----".utf8)
        guard !der.isEmpty, bytes[position...].starts(with: end) else { return nil }
        position += end.count
        if position < bytes.count, bytes[position] == 0x0D { position += 1 }
        if position < bytes.count, bytes[position] == 0x0A { position += 1 }
        guard position == bytes.count else { return nil }
        return der
    }
}
