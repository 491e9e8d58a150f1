/// One HTTP response as an ``HTTPSClient`` received it.
public struct HTTPResponse: Sendable {
    /// The status code, e.g. 200.
    public let status: Int
    /// The header fields in arrival order, names as sent (compare them case-insensitively, or use ``header(_:)``).
    public let headers: [HTTPHeader]
    /// The body, never longer than the request's `maxBytes`.
    public let body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: [HTTPHeader], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The value of the first header named `name` (case-insensitive), trimmed; nil if absent.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The body as UTF-8 text with invalid sequences replaced (for messages; never for secrets).
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// One header field.
public struct HTTPHeader: Sendable, Equatable {
    /// The field name as received.
    public let name: String
    /// The field value, with surrounding whitespace removed.
    public let value: String

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
