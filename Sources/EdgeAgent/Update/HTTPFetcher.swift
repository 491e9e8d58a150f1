import Foundation
import WardenCore
import WardenUpdate

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A ``TUFFetcher`` over HTTP(S): `GET <metadataBaseURL>/<path>` and `GET <targetsBaseURL>/<path>`.
///
/// It defends the TUF client against a hostile or broken server on its own, before any verification:
/// - endless data: the body is counted as it arrives and the transfer is cancelled once `maxLength` is exceeded
///   (a `Content-Length` above the limit is refused before the body is read);
/// - slow retrieval: every request has an idle timeout and a total deadline;
/// - scheme change: a redirect to another scheme (https → http, http → https) is refused, and so is any final response
///   whose URL is not on the request's scheme (FoundationNetworking resolves a `file:` Location against the current
///   origin, so it never reads a local file).
///
/// HTTPS uses the system trust store (FoundationNetworking over libcurl); there is no custom anchor yet.
public struct HTTPFetcher: TUFFetcher {
    /// The metadata store, e.g. `https://authority:8443/tuf/metadata`.
    public let metadataBaseURL: URL
    /// The target store, e.g. `https://authority:8443/tuf/targets`; nil when only metadata is fetched.
    public let targetsBaseURL: URL?
    /// The longest a request may stay without receiving data.
    public var idleTimeout: TimeInterval
    /// The longest one request may take in total.
    public var totalTimeout: TimeInterval

    /// A fetcher for the two stores.
    /// - Throws: `.badInput` if a URL is not `http` or `https`.
    public init(metadataBaseURL: URL, targetsBaseURL: URL? = nil, idleTimeout: TimeInterval = 15, totalTimeout: TimeInterval = 300) throws {
        for url in [metadataBaseURL, targetsBaseURL].compactMap({ $0 }) {
            guard let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http", url.host != nil else {
                throw WardenError.badInput("repository URL '\(url.absoluteString.prefix(200))' must be an http or https URL with a host")
            }
        }
        self.metadataBaseURL = metadataBaseURL
        self.targetsBaseURL = targetsBaseURL
        self.idleTimeout = idleTimeout
        self.totalTimeout = totalTimeout
    }

    /// Fetches `path` from the metadata or target store; nil on HTTP 404.
    /// - Throws: `.badInput` for an unsafe path or a body over `maxLength`, `.notFound` without a target store,
    ///   `.storage` for transport failures, other HTTP statuses and refused redirects.
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
        guard let url = URL(string: text + "/" + path) else {
            throw WardenError.badInput("cannot form a URL for '\(path.prefix(100))'")
        }
        return try await HTTPGet(url: url, maxLength: maxLength, idleTimeout: idleTimeout, totalTimeout: totalTimeout).run()
    }
}

/// One bounded GET, driven by a URLSession delegate so the body can be measured while it arrives.
struct HTTPGet {
    let url: URL
    let maxLength: Int
    let idleTimeout: TimeInterval
    let totalTimeout: TimeInterval

    func run() async throws -> [UInt8]? {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = idleTimeout
        configuration.timeoutIntervalForResource = totalTimeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        var request = URLRequest(url: url)
        request.timeoutInterval = idleTimeout
        let delegate = BoundedDownload(url: url, maxLength: maxLength)
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            delegate.start(continuation)
            session.dataTask(with: request).resume()
        }
    }
}

/// The delegate of one ``HTTPGet``: accumulates at most `maxLength` bytes and resumes its continuation exactly once.
///
/// `@unchecked Sendable`: URLSession calls the delegate from its own queue while the caller owns the value; every
/// mutable field is read and written only while holding `lock`.
final class BoundedDownload: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let url: URL
    let maxLength: Int
    private let lock = NSLock()
    private var body: [UInt8] = []
    private var status: Int?
    private var refusal: WardenError?
    private var continuation: CheckedContinuation<[UInt8]?, any Error>?

    init(url: URL, maxLength: Int) {
        self.url = url
        self.maxLength = maxLength
    }

    var shownURL: String { String(url.absoluteString.prefix(200)) }

    func start(_ continuation: CheckedContinuation<[UInt8]?, any Error>) {
        lock.withLock { self.continuation = continuation }
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        let code = (response as? HTTPURLResponse)?.statusCode
        let tooLong = code == 200 && response.expectedContentLength > Int64(maxLength)
        // A redirect the delegate never saw (FoundationNetworking does not always ask) must still stay on the scheme.
        let from = url.scheme?.lowercased()
        let to = response.url?.scheme?.lowercased()
        let offScheme = code == nil || to != from
        lock.withLock {
            status = code
            if offScheme {
                refusal = WardenError.badInput("'\(shownURL)' redirects to a \(to ?? "non-HTTP") URL; only \(from ?? "") redirects are followed")
            } else if tooLong {
                refusal = WardenError.badInput("'\(shownURL)' is longer than the \(maxLength)-byte limit")
            }
        }
        completionHandler(tooLong || offScheme ? .cancel : .allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let over: Bool = lock.withLock {
            guard refusal == nil else { return true }
            // Error bodies are not needed; keep at most a little of them.
            let limit = status == 200 ? maxLength : 4096
            if body.count + data.count > limit {
                if status == 200 { refusal = WardenError.badInput("'\(shownURL)' is longer than the \(maxLength)-byte limit") }
                return status == 200
            }
            body.append(contentsOf: data)
            return false
        }
        if over { dataTask.cancel() }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        let from = url.scheme?.lowercased()
        let to = request.url?.scheme?.lowercased()
        guard from == to else {
            lock.withLock {
                refusal = WardenError.badInput("'\(shownURL)' redirects to a \(to ?? "unknown") URL; only \(from ?? "") redirects are followed")
            }
            completionHandler(nil)
            task.cancel()
            return
        }
        completionHandler(request)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let (continuation, outcome): (CheckedContinuation<[UInt8]?, any Error>?, Result<[UInt8]?, any Error>) = lock.withLock {
            let pending = self.continuation
            self.continuation = nil
            if let refusal { return (pending, .failure(refusal)) }
            if let error {
                return (pending, .failure(WardenError.storage("cannot fetch '\(shownURL)': \(error.localizedDescription)")))
            }
            switch status {
            case 200: return (pending, .success(body))
            case 404: return (pending, .success(nil))
            case let code?: return (pending, .failure(WardenError.storage("'\(shownURL)' answered HTTP \(code)")))
            case nil: return (pending, .failure(WardenError.storage("'\(shownURL)' gave no HTTP response")))
            }
        }
        continuation?.resume(with: outcome)
    }
}
