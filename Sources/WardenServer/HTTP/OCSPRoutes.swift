import Foundation
import Hummingbird
import WardenAuthority
import WardenPKI
import WardenStore

/// The OCSP responder (RFC 6960): `POST /ocsp` with an `application/ocsp-request` body and `GET /ocsp/{base64}`
/// (Appendix A.1). Statuses come from the registry; responses are signed by the issuing CA.
struct OCSPRoutes {
    let responder: OCSPResponder
    let registry: Registry
    let metrics: ServerMetrics

    static let requestMediaType = "application/ocsp-request"
    static let responseMediaType = "application/ocsp-response"
    /// A GET request's encoded path; OCSP requests are a few hundred bytes.
    static let maximumGETLength = 4 * 1024

    func register(on router: Router<WardenRequestContext>) {
        router.post("/ocsp") { request, _ in
            try RequestBody.require(request, mediaType: Self.requestMediaType)
            return answer(try await RequestBody.collect(request))
        }
        router.get("/ocsp/**") { request, _ in
            answer(try Self.decodeGET(request.uri.path))
        }
    }

    /// Decodes the `{url-encoding of base64 of DER}` path of RFC 6960 Appendix A.1.
    static func decodeGET(_ path: String) throws -> [UInt8] {
        guard path.utf8.count <= maximumGETLength else {
            throw WardenHTTPError(.uriTooLong, "the OCSP GET request is longer than \(maximumGETLength) bytes; use POST")
        }
        guard let range = path.range(of: "/ocsp/") else { throw WardenHTTPError(.notFound, "no OCSP request in the path") }
        let encoded = String(path[range.upperBound...])
        guard let text = encoded.removingPercentEncoding, let data = Data(base64Encoded: text) else {
            throw WardenHTTPError(.badRequest, "the OCSP GET path must be the URL-encoded base64 of a DER OCSP request")
        }
        return Array(data)
    }

    func answer(_ requestDER: [UInt8]) -> Response {
        let registry = self.registry
        var outcome = "malformed"
        let der = responder.respond(to: requestDER, now: Date()) { serial in
            guard let status = try registry.certificateStatus(serial: serial) else {
                outcome = "unknown"
                return .unknown
            }
            guard let revoked = status.revoked else {
                if outcome != "revoked" { outcome = "good" }
                return .good
            }
            outcome = "revoked"
            return .revoked(time: revoked.revokedAt, reason: RevocationReason(rawValue: revoked.reasonCode))
        }
        metrics.ocsp(outcome)
        // A signed response may be cached until its nextUpdate (RFC 5019 §6.2); error responses never.
        let cacheControl = outcome == "malformed" ? "no-store" : "max-age=\(Int(responder.validity)), public, no-transform, must-revalidate"
        return Response(
            status: .ok, headers: [.contentType: Self.responseMediaType, .cacheControl: cacheControl],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: der)))
    }
}
