import Foundation
import Hummingbird
import NIOCore
import WardenAuthority
import WardenCore

/// The TUF repository over HTTPS, as any TUF 1.0 client (python-tuf's ngclient, Warden's agent) expects it:
///
/// ```
/// GET /tuf/metadata/<file>    N.root.json, root.json, timestamp.json, N.snapshot.json, N.targets.json
/// GET /tuf/targets/<path>     images, the consistent-snapshot name <dir/><sha256>.<basename>
/// ```
///
/// Both honour a single `Range: bytes=…` (RFC 9110 §14): 206 with `Content-Range`, 416 with `Content-Range: bytes */N`
/// when unsatisfiable; several ranges or a malformed header are ignored (200 with the whole file, as §14.2 allows).
/// Files are read from disk per request, so a `firmware add` or a refresh is visible at once.
struct TUFRoutes {
    let repository: FirmwareRepository

    /// Bytes read from disk per chunk of a response body.
    static let chunkBytes = 256 * 1024

    func register(on router: Router<WardenRequestContext>) {
        router.get("/tuf/metadata/:file") { request, context in
            let name = try context.parameters.require("file")
            guard let path = repository.metadataFile(name) else {
                throw WardenHTTPError(.notFound, "no such metadata file")
            }
            return try Self.serve(path: path, request: request, contentType: "application/json", cache: "no-cache")
        }
        router.get("/tuf/targets/**") { request, context in
            let path = context.parameters.getCatchAll().joined(separator: "/")
            guard let file = repository.targetFile(path) else {
                throw WardenHTTPError(.notFound, "no such target file")
            }
            // Content-addressed: the bytes under a hash name never change.
            return try Self.serve(path: file, request: request, contentType: "application/octet-stream", cache: "public, max-age=31536000, immutable")
        }
    }

    /// A single byte range resolved against a length.
    enum RangeRequest: Equatable {
        /// No usable Range header: the whole file.
        case whole
        /// Bytes `lower...upper` (inclusive).
        case bytes(Int, Int)
        /// A syntactically valid range that selects nothing.
        case unsatisfiable
    }

    /// Parses `Range` against `length` (RFC 9110 §14.1.2: `bytes=a-b`, `bytes=a-`, `bytes=-n`).
    static func parseRange(_ header: String?, length: Int) -> RangeRequest {
        guard let header, header.utf8.count <= 200 else { return .whole }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes=") else { return .whole }
        let spec = trimmed.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        func number(_ text: String) -> Int? {
            guard !text.isEmpty, text.count <= 18, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(text)
        }
        if first.isEmpty {
            guard let suffix = number(last) else { return .whole }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .bytes(max(0, length - suffix), length - 1)
        }
        guard let lower = number(first) else { return .whole }
        var upper = length - 1
        if !last.isEmpty {
            guard let value = number(last) else { return .whole }
            guard value >= lower else { return .whole }
            upper = min(value, length - 1)
        }
        guard lower < length else { return .unsatisfiable }
        return .bytes(lower, upper)
    }

    static func serve(path: String, request: Request, contentType: String, cache: String) throws -> Response {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw WardenHTTPError(.notFound, "no such file") }
        let length: Int
        do {
            length = Int(try handle.seekToEnd())
        } catch {
            try? handle.close()
            throw WardenHTTPError(.internalServerError, "the file cannot be read")
        }
        var headers: HTTPFields = [.contentType: contentType, .acceptRanges: "bytes", .cacheControl: cache]
        let status: HTTPResponse.Status
        let lower: Int
        let upper: Int
        switch parseRange(request.headers[.range], length: length) {
        case .whole:
            status = .ok
            (lower, upper) = (0, length - 1)
        case .bytes(let a, let b):
            status = .partialContent
            (lower, upper) = (a, b)
            headers[.contentRange] = "bytes \(a)-\(b)/\(length)"
        case .unsatisfiable:
            try? handle.close()
            headers[.contentRange] = "bytes */\(length)"
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(
                status: .rangeNotSatisfiable, headers: headers,
                body: ResponseBody(byteBuffer: ByteBuffer(string: "error: the requested range is outside the \(length)-byte file\n")))
        }
        let count = max(0, upper - lower + 1)
        let file = SendableFileHandle(handle: handle)
        let body = ResponseBody(contentLength: count) { writer in
            defer { try? file.handle.close() }
            try file.handle.seek(toOffset: UInt64(lower))
            var remaining = count
            while remaining > 0 {
                let data = try file.handle.read(upToCount: min(remaining, chunkBytes)) ?? Data()
                guard !data.isEmpty else { throw WardenHTTPError(.internalServerError, "the file shrank while it was served") }
                remaining -= data.count
                try await writer.write(ByteBuffer(bytes: data))
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }
}

/// A file handle moved into one response body writer and used only there.
/// @unchecked Sendable: the handle is created per request and touched by exactly one task at a time.
struct SendableFileHandle: @unchecked Sendable {
    let handle: FileHandle
}
