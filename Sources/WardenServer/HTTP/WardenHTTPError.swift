import Hummingbird

/// An error answered to the client with its status and one plain-text sentence (`error: …`).
struct WardenHTTPError: HTTPResponseError {
    /// The HTTP status.
    let status: HTTPResponse.Status
    /// One sentence for the client; never contains secrets.
    let message: String
    /// Extra headers, e.g. `WWW-Authenticate` on 401.
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "text/plain; charset=utf-8"
        return Response(
            status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: "error: \(message)\n")))
    }
}
