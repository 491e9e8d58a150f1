import Foundation
import Hummingbird
import NIOCore

/// Strict request parsing shared by the routes: media types, body limits and base64 bodies.
enum RequestBody {
    /// The media type of a Content-Type header, lowercased, without parameters; nil if absent.
    static func mediaType(_ request: Request) -> String? {
        guard let value = request.headers[.contentType] else { return nil }
        let type = value.split(separator: ";", maxSplits: 1).first.map(String.init) ?? value
        return type.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// Refuses (415) a request whose Content-Type is not `expected`.
    static func require(_ request: Request, mediaType expected: String) throws {
        guard let type = mediaType(request) else {
            throw WardenHTTPError(.unsupportedMediaType, "Content-Type must be \(expected) (none was sent)")
        }
        guard type == expected else {
            throw WardenHTTPError(.unsupportedMediaType, "Content-Type must be \(expected), not \(type.prefix(80))")
        }
    }

    /// The whole body, at most `limit` bytes; a larger declared or actual body is refused with 413.
    static func collect(_ request: Request, limit: Int = HTTPLimits.maximumBodyBytes) async throws -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            throw WardenHTTPError(.contentTooLarge, "the body is \(declared) bytes; the limit is \(limit)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw WardenHTTPError(.contentTooLarge, "the body is larger than the \(limit)-byte limit")
        }
        return Array(buffer.readableBytesView)
    }

    /// Decodes a base64 body (RFC 7030 §4.2.1 / RFC 8951: base64, line breaks allowed). Any other byte is refused.
    static func base64(_ bytes: [UInt8], what: String) throws -> [UInt8] {
        let cleaned = bytes.filter { $0 != 0x0D && $0 != 0x0A && $0 != 0x20 && $0 != 0x09 }
        guard !cleaned.isEmpty, let text = String(validating: cleaned, as: UTF8.self),
            let data = Data(base64Encoded: text)
        else { throw WardenHTTPError(.badRequest, "the body must be the base64 encoding of \(what)") }
        return Array(data)
    }

    /// Base64 with a line break every 64 characters, as EST responses are usually written.
    static func base64Lines(_ bytes: [UInt8]) -> String {
        let text = Data(bytes).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return text + "\n"
    }
}
