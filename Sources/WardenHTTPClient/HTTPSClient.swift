import Dispatch
import Foundation
import WardenCore

/// A small HTTP(S) client over libcurl for the agent: the one place that talks TLS to the authority.
///
/// Unlike FoundationNetworking on Linux it can trust a private fleet CA and present a client certificate.
/// Every request is defended the same way:
/// - TLS: peer and hostname verification are always on, TLS 1.2 is the minimum, and when ``TLSOptions/caFile`` is
///   given ONLY that file is trusted;
/// - size: the body is counted as it arrives and the transfer is aborted once `maxBytes` is exceeded, and a
///   `Content-Length` above `maxBytes` is refused before the body is read;
/// - time: a connect timeout, an idle timeout (no data) and a total deadline;
/// - redirects: `get` follows at most ``maximumRedirects`` redirects and only on the request's scheme; `post` never
///   follows one;
/// - no proxy, no cookies, no content decoding, HTTP/1.1.
///
/// The blocking transfer runs on a dedicated dispatch queue, never on Swift's cooperative pool, and a cancelled task
/// aborts its transfer. Nothing is logged: request headers (which may carry credentials) never appear in errors.
public struct HTTPSClient: Sendable {
    /// Trust anchors and client credential.
    public let options: TLSOptions
    /// The longest a TCP + TLS connection may take to establish.
    public var connectTimeout: Duration
    /// The longest a transfer may receive nothing before it is aborted; nil for no idle limit (the total deadline
    /// still applies).
    public var idleTimeout: Duration?
    /// Most redirects one `get` follows.
    public var maximumRedirects: Int = 5

    /// Where every blocking transfer runs, off the cooperative thread pool.
    static let queue = DispatchQueue(label: "warden.https-client", qos: .utility, attributes: .concurrent)

    /// A client with the given trust and credential.
    /// - Throws: `.badInput` if a file in `options` cannot be read, or a key is given without a certificate (or the
    ///   reverse). libcurl itself is opened by the first request, which throws `.internal` if it is missing.
    public init(options: TLSOptions = TLSOptions(), connectTimeout: Duration = .seconds(15), idleTimeout: Duration? = .seconds(30)) throws {
        guard (options.certFile == nil) == (options.keyFile == nil) else {
            throw WardenError.badInput("a client certificate needs its key and a key needs its certificate")
        }
        for (path, what) in [(options.caFile, "CA file"), (options.certFile, "client certificate"), (options.keyFile, "client key")] {
            guard let path else { continue }
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw WardenError.badInput("\(what) '\(path)' cannot be read")
            }
        }
        self.options = options
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// `GET url`, optionally for a byte `range` (inclusive, RFC 9110 §14), following same-scheme redirects.
    /// - Returns: the final response, whatever its status (a 3xx without `Location` is returned as is).
    /// - Throws: `.badInput` for a URL that is not http(s), a redirect to another scheme, or a body over `maxBytes`;
    ///   `.storage` for transport failures (DNS, TCP, TLS verification, timeouts, too many redirects);
    ///   `CancellationError` if the task is cancelled.
    public func get(_ url: String, range: ClosedRange<Int>? = nil, maxBytes: Int, timeout: Duration) async throws -> HTTPResponse {
        let scheme = try Self.check(url)
        let deadline = ContinuousClock.now + timeout
        var current = url
        for _ in 0...maximumRedirects {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw WardenError.storage("cannot fetch '\(Self.shown(url))': timed out") }
            let request = CurlTransfer.Request(
                url: current, shownURL: Self.shown(url), method: .get, range: range, body: [], headers: [], maxBytes: maxBytes,
                timeout: remaining)
            let (response, location) = try await perform(request)
            if (300...399).contains(response.status), response.status != 304, let location {
                let target = (URLComponents(string: location)?.scheme ?? "unknown").lowercased()
                guard target == scheme else {
                    throw WardenError.badInput(
                        "'\(Self.shown(url))' redirects to a \(target) URL; only \(scheme) redirects are followed")
                }
                current = location
                continue
            }
            return response
        }
        throw WardenError.storage("'\(Self.shown(url))' redirects more than \(maximumRedirects) times")
    }

    /// `POST url` with `body` of `contentType` and extra `headers` (e.g. `Authorization`). Redirects are not followed.
    /// - Throws: `.badInput` for a URL that is not http(s), a header with a line break, or a response body over
    ///   `maxBytes`; `.storage` for transport failures; `CancellationError` if the task is cancelled.
    public func post(
        _ url: String, body: [UInt8], contentType: String, headers: [(String, String)] = [], maxBytes: Int, timeout: Duration
    ) async throws -> HTTPResponse {
        _ = try Self.check(url)
        var fields = [("Content-Type", contentType)] + headers
        fields.append(("Expect", ""))  // no 100-continue round trip
        for (name, value) in fields {
            // By bytes: "\r\n" is one Character in Swift, so a Character test would miss it.
            guard !name.isEmpty, !(name + value).utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }), !name.contains(":") else {
                throw WardenError.badInput("header '\(name.prefix(40))' is not a valid HTTP header")
            }
        }
        let request = CurlTransfer.Request(
            url: url, shownURL: Self.shown(url), method: .post, range: nil, body: body, headers: fields, maxBytes: maxBytes,
            timeout: timeout)
        return try await perform(request).response
    }

    /// Runs one transfer on ``queue``; cancelling the calling task aborts it.
    func perform(_ request: CurlTransfer.Request) async throws -> (response: HTTPResponse, location: String?) {
        let transfer = CurlTransfer(request: request, options: options, connectTimeout: connectTimeout, idleTimeout: idleTimeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                Self.queue.async { continuation.resume(with: Result { try transfer.run() }) }
            }
        } onCancel: {
            transfer.cancel()
        }
    }

    /// The URL's lowercase scheme after checking it is an http(s) URL with a host and no user info.
    static func check(_ url: String) throws -> String {
        guard url.utf8.count <= 4096, !url.contains(where: { $0.isWhitespace || $0 == "\0" }),
            let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
            components.user == nil, components.password == nil
        else {
            throw WardenError.badInput("'\(shown(url))' is not an http or https URL with a host (and no user info)")
        }
        return scheme
    }

    /// A URL as error messages show it: at most 200 characters.
    static func shown(_ url: String) -> String { String(url.prefix(200)) }
}
