import CCurl
import Foundation
import Synchronization
import WardenCore

/// One libcurl easy transfer: set up, performed (blocking) and torn down in ``run()``.
///
/// `@unchecked Sendable`: the transfer is created on the caller's task and then used by exactly one dispatch thread
/// inside `run()`; the only field touched from elsewhere is `cancelled`, an atomic.
final class CurlTransfer: @unchecked Sendable {
    /// What to send.
    struct Request: Sendable {
        enum Method: Sendable { case get, post }
        let url: String
        /// How errors name the URL.
        let shownURL: String
        let method: Method
        let range: ClosedRange<Int>?
        let body: [UInt8]
        let headers: [(String, String)]
        let maxBytes: Int
        let timeout: Duration
    }

    /// libcurl, opened (dlopen) and initialised once, by the first transfer rather than at start-up (see CCurl.h);
    /// nil when it is usable, else why not.
    static let unavailable: WardenError? = {
        var reason = [CChar](repeating: 0, count: 256)
        guard warden_curl_load(&reason, reason.count) == 0 else {
            return .internal(String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return warden_curl_global_init() == CURLE_OK ? nil : .internal("libcurl could not be initialised")
    }()
    /// Most header bytes (all lines) accepted in one response.
    static let maximumHeaderBytes = 64 * 1024

    let request: Request
    let options: TLSOptions
    let connectTimeout: Duration
    let idleTimeout: Duration?
    let cancelled = Atomic<Bool>(false)

    // Written only by libcurl's callbacks during `run()`, on the same thread.
    private var body: [UInt8] = []
    private var headers: [HTTPHeader] = []
    private var headerBytes = 0
    private var overLimit = false
    private var headersTooLarge = false

    init(request: Request, options: TLSOptions, connectTimeout: Duration, idleTimeout: Duration?) {
        self.request = request
        self.options = options
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// Asks a running transfer to stop at libcurl's next progress callback.
    func cancel() { cancelled.store(true, ordering: .relaxed) }

    var limitError: WardenError {
        WardenError.badInput("'\(request.shownURL)' is longer than the \(request.maxBytes)-byte limit")
    }

    /// Performs the transfer on the calling thread (blocking) and returns the response and the resolved redirect
    /// target, if the response names one.
    func run() throws -> (response: HTTPResponse, location: String?) {
        guard !cancelled.load(ordering: .relaxed) else { throw CancellationError() }
        if let unavailable = Self.unavailable { throw unavailable }
        guard let handle = warden_curl_easy_init() else { throw WardenError.internal("libcurl could not create a transfer") }
        defer { warden_curl_easy_cleanup(handle) }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { warden_curl_slist_free_all(headerList) }

        var failures: [CURLoption] = []
        func set(_ option: CURLoption, _ value: Int) {
            if warden_curl_setopt_long(handle, option, value) != CURLE_OK { failures.append(option) }
        }
        func set(_ option: CURLoption, _ value: String?) {
            // libcurl copies string options (except POSTFIELDS, which is not used here).
            let code = value.map { text in text.withCString { warden_curl_setopt_string(handle, option, $0) } }
                ?? warden_curl_setopt_string(handle, option, nil)
            if code != CURLE_OK { failures.append(option) }
        }
        func milliseconds(_ duration: Duration) -> Int {
            let (seconds, attoseconds) = duration.components
            return max(1, Int(clamping: seconds) &* 1000 &+ Int(attoseconds / 1_000_000_000_000_000))
        }

        set(CURLOPT_URL, request.url)
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        set(CURLOPT_FOLLOWLOCATION, 0)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_PROXY, "")  // never a proxy from the environment
        set(CURLOPT_HTTP_VERSION, warden_curl_http_version_1_1())
        set(CURLOPT_CONNECTTIMEOUT_MS, milliseconds(connectTimeout))
        set(CURLOPT_TIMEOUT_MS, milliseconds(request.timeout))
        if let idleTimeout {
            set(CURLOPT_LOW_SPEED_LIMIT, 1)
            set(CURLOPT_LOW_SPEED_TIME, max(1, Int(idleTimeout.components.seconds)))
        }
        // TLS: always verify the peer and its name; only the given anchors when a CA file is given.
        set(CURLOPT_SSL_VERIFYPEER, 1)
        set(CURLOPT_SSL_VERIFYHOST, 2)
        set(CURLOPT_SSLVERSION, warden_curl_tls12())
        if let caFile = options.caFile {
            set(CURLOPT_CAINFO, caFile)
            set(CURLOPT_CAPATH, nil)
        }
        if let certFile = options.certFile, let keyFile = options.keyFile {
            set(CURLOPT_SSLCERT, certFile)
            set(CURLOPT_SSLCERTTYPE, "PEM")
            set(CURLOPT_SSLKEY, keyFile)
            set(CURLOPT_SSLKEYTYPE, "PEM")
        }
        if request.maxBytes >= 0 {
            if warden_curl_setopt_off(handle, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(request.maxBytes)) != CURLE_OK {
                failures.append(CURLOPT_MAXFILESIZE_LARGE)
            }
        }
        if let range = request.range {
            guard range.lowerBound >= 0 else { throw WardenError.badInput("a byte range cannot start below 0") }
            set(CURLOPT_RANGE, "\(range.lowerBound)-\(range.upperBound)")
        }
        switch request.method {
        case .get:
            set(CURLOPT_HTTPGET, 1)
        case .post:
            set(CURLOPT_POST, 1)
            if warden_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)) != CURLE_OK {
                failures.append(CURLOPT_POSTFIELDSIZE_LARGE)
            }
            // COPYPOSTFIELDS copies POSTFIELDSIZE bytes, so the body may hold NULs.
            let code = request.body.withUnsafeBytes { raw in
                raw.isEmpty
                    ? "".withCString { warden_curl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, $0) }
                    : warden_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
            }
            if code != CURLE_OK { failures.append(CURLOPT_COPYPOSTFIELDS) }
        }
        for (name, value) in request.headers {
            // "Name;" sends an empty header; "Name:" removes one of libcurl's own.
            let line = value.isEmpty && name.lowercased() != "expect" ? "\(name);" : "\(name): \(value)"
            guard let appended = warden_curl_slist_append(headerList, line) else { throw WardenError.internal("out of memory for a header") }
            headerList = appended
        }
        if headerList != nil, warden_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList) != CURLE_OK {
            failures.append(CURLOPT_HTTPHEADER)
        }

        let context = Unmanaged.passUnretained(self).toOpaque()
        let writeCallback: warden_curl_data_callback = { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
            return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
        let headerCallback: warden_curl_data_callback = { data, size, count, context in
            guard let data, let context else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
            return transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
        let progressCallback: warden_curl_progress_callback = { context, _, _, _, _ in
            guard let context else { return 1 }
            return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().cancelled.load(ordering: .relaxed) ? 1 : 0
        }
        if warden_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, writeCallback) != CURLE_OK
            || warden_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context) != CURLE_OK
            || warden_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback) != CURLE_OK
            || warden_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context) != CURLE_OK
            || warden_curl_setopt_progress_callback(handle, progressCallback) != CURLE_OK
            || warden_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context) != CURLE_OK
            || warden_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer) != CURLE_OK
        {
            throw WardenError.internal("libcurl refused a callback option")
        }
        set(CURLOPT_NOPROGRESS, 0)
        guard failures.isEmpty else {
            throw WardenError.internal("libcurl refused \(failures.count) option(s) (first: \(failures[0].rawValue)); is it older than 7.85?")
        }

        let code = warden_curl_easy_perform(handle)
        if cancelled.load(ordering: .relaxed) { throw CancellationError() }
        if overLimit || code == CURLE_FILESIZE_EXCEEDED { throw limitError }
        if headersTooLarge { throw WardenError.badInput("'\(request.shownURL)' sent more than \(Self.maximumHeaderBytes) bytes of headers") }
        guard code == CURLE_OK else {
            let detail = errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: warden_curl_easy_strerror(code))
            throw WardenError.storage("cannot fetch '\(request.shownURL)': \(detail)")
        }
        var status = 0
        _ = warden_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        guard status > 0 else { throw WardenError.storage("'\(request.shownURL)' gave no HTTP response") }
        var redirect: UnsafeMutablePointer<CChar>?
        _ = warden_curl_getinfo_string(handle, CURLINFO_REDIRECT_URL, &redirect)
        let location = redirect.map { String(cString: $0) }
        return (HTTPResponse(status: status, headers: headers, body: body), location)
    }

    /// Appends a body chunk; false (abort) once the body would exceed the limit.
    private func receiveBody(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard body.count + chunk.count <= request.maxBytes else {
            overLimit = true
            return false
        }
        body.append(contentsOf: chunk)
        return true
    }

    /// Records one header line; false (abort) for a `Content-Length` above the limit or too many header bytes.
    private func receiveHeader(_ chunk: UnsafeRawBufferPointer) -> Bool {
        headerBytes += chunk.count
        guard headerBytes <= Self.maximumHeaderBytes else {
            headersTooLarge = true
            return false
        }
        let line = String(decoding: chunk, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix("HTTP/") {
            headers = []  // a new response (after 1xx): keep only the final one's fields
            return true
        }
        guard let colon = line.firstIndex(of: ":") else { return true }
        let name = String(line[..<colon])
        let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        headers.append(HTTPHeader(name: name, value: value))
        if name.lowercased() == "content-length" {
            guard let length = Int(value), length >= 0 else { return true }
            if length > request.maxBytes {
                overLimit = true
                return false
            }
        }
        return true
    }
}
