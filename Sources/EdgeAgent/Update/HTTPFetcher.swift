import Foundation
import WardenCore
import WardenHTTPClient
import WardenUpdate

/// A ``TUFFetcher`` over HTTP(S): `GET <metadataBaseURL>/<path>` and `GET <targetsBaseURL>/<path>`.
///
/// It defends the TUF client against a hostile or broken server on its own, before any verification (all enforced by
/// ``HTTPSClient``, libcurl underneath):
/// - endless data: the body is counted as it arrives and the transfer is aborted once `maxLength` is exceeded
///   (a `Content-Length` above the limit is refused before the body is read);
/// - slow retrieval: every request has an idle timeout and a total deadline;
/// - scheme change: a redirect to another scheme (https → http, http → https, file:) is refused.
///
/// HTTPS trusts ONLY `caFile` when one is given (the fleet CA, e.g. the output of `warden ca bundle`), otherwise the
/// system trust store; peer and hostname verification are always on.
public struct HTTPFetcher: TUFFetcher {
    /// The metadata store, e.g. `https://authority:8443/tuf/metadata`.
    public let metadataBaseURL: URL
    /// The target store, e.g. `https://authority:8443/tuf/targets`; nil when only metadata is fetched.
    public let targetsBaseURL: URL?
    /// The longest a request may stay without receiving data.
    public var idleTimeout: TimeInterval
    /// The longest one request may take in total.
    public var totalTimeout: TimeInterval
    /// The PEM file of the only CAs trusted for HTTPS; nil for the system trust store.
    public let caFile: String?

    /// A fetcher for the two stores.
    /// - Throws: `.badInput` if a URL is not `http` or `https`, or `caFile` cannot be read.
    public init(
        metadataBaseURL: URL, targetsBaseURL: URL? = nil, idleTimeout: TimeInterval = 15, totalTimeout: TimeInterval = 300,
        caFile: String? = nil
    ) throws {
        for url in [metadataBaseURL, targetsBaseURL].compactMap({ $0 }) {
            guard let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http", url.host != nil else {
                throw WardenError.badInput("repository URL '\(url.absoluteString.prefix(200))' must be an http or https URL with a host")
            }
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw WardenError.badInput("CA file '\(caFile)' cannot be read")
        }
        self.metadataBaseURL = metadataBaseURL
        self.targetsBaseURL = targetsBaseURL
        self.idleTimeout = idleTimeout
        self.totalTimeout = totalTimeout
        self.caFile = caFile
    }

    /// Fetches `path` from the metadata or target store; nil on HTTP 404.
    /// - Throws: `.badInput` for an unsafe path, a body over `maxLength` or a refused redirect, `.notFound` without a
    ///   target store, `.storage` for transport failures (TLS verification included) and other HTTP statuses.
    public func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
        guard TUFPath.isSafe(path) else { throw WardenError.badInput("unsafe repository path '\(path.prefix(100))'") }
        let base: URL
        switch kind {
        case .metadata: base = metadataBaseURL
        case .target:
            guard let targetsBaseURL else { throw WardenError.notFound("no target base URL was given") }
            base = targetsBaseURL
        }
        var text = base.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        let url = text + "/" + path
        let client = try HTTPSClient(
            options: TLSOptions(caFile: caFile), connectTimeout: Self.duration(min(idleTimeout, totalTimeout)),
            idleTimeout: Self.duration(idleTimeout))
        let response = try await client.get(url, maxBytes: maxLength, timeout: Self.duration(totalTimeout))
        switch response.status {
        case 200: return response.body
        case 404: return nil
        default: throw WardenError.storage("'\(url.prefix(200))' answered HTTP \(response.status)")
        }
    }

    static func duration(_ seconds: TimeInterval) -> Duration {
        .milliseconds(Int64((max(0.001, seconds) * 1000).rounded()))
    }
}
