import Foundation
import Hummingbird
import WardenAuthority
import WardenCore
import WardenPKI

/// EST (RFC 7030) under `/.well-known/est`: `cacerts`, `simpleenroll` with a one-time bootstrap token (HTTP Basic,
/// RFC 7030 §3.2.3) and `simplereenroll` with the device's current certificate (mutual TLS, §3.3.2).
struct ESTRoutes {
    let authority: Authority
    let metrics: ServerMetrics
    /// The certs-only message of issuing CA + root, built once (RFC 7030 §4.1.3).
    let caCertificatesPKCS7: [UInt8]

    static let pkcs7MediaType = "application/pkcs7-mime"
    static let certsOnlyContentType = "application/pkcs7-mime; smime-type=certs-only"
    static let pkcs10MediaType = "application/pkcs10"

    init(authority: Authority, metrics: ServerMetrics) throws {
        self.authority = authority
        self.metrics = metrics
        caCertificatesPKCS7 = try PKCS7CertsOnly.encode(pem: try authority.ca.bundlePEM, source: "CA bundle")
    }

    func register(on router: Router<WardenRequestContext>) {
        let group = router.group("/.well-known/est")
        group.get("cacerts") { _, _ in Self.certsOnly(caCertificatesPKCS7) }
        group.post("simpleenroll") { request, context in try await simpleEnroll(request, context: context) }
        group.post("simplereenroll") { request, context in try await simpleReenroll(request, context: context) }
    }

    /// RFC 7030 §4.2.1: enrollment of a device that has no certificate yet, authenticated by its bootstrap token.
    func simpleEnroll(_ request: Request, context: WardenRequestContext) async throws -> Response {
        do {
            try RequestBody.require(request, mediaType: Self.pkcs10MediaType)
            let (deviceID, token) = try Self.basicCredentials(request)
            let csr = try RequestBody.base64(try await RequestBody.collect(request), what: "a PKCS#10 request")
            do {
                _ = try authority.ca.validateCSR(csr, deviceID: deviceID, source: "EST request for \(deviceID)")
            } catch let error as WardenError {
                throw Self.csrError(error)
            }
            let issued: IssuedCertificate
            do {
                issued = try authority.enrollWithToken(deviceID, token: token, csr: csr, now: Date())
            } catch let error as WardenError {
                switch error.code {
                case .policyViolation: throw WardenHTTPError(.unauthorized, error.message, headers: Self.challenge)
                case .alreadyExists: throw WardenHTTPError(.conflict, error.message)
                default: throw Self.serverError(error)
                }
            }
            context.logger.info("EST enrollment", metadata: ["device": "\(deviceID)", "serial": "\(issued.serial)"])
            metrics.enrollment(success: true)
            return Self.certsOnly(try PKCS7CertsOnly.encode(certificatesDER: [issued.der]))
        } catch {
            metrics.enrollment(success: false)
            throw error
        }
    }

    /// RFC 7030 §4.2.2: renewal by an enrolled device, authenticated by its current certificate; the CSR's CN must be
    /// the device's id.
    func simpleReenroll(_ request: Request, context: WardenRequestContext) async throws -> Response {
        do {
            let peer = try context.requirePeer()
            try RequestBody.require(request, mediaType: Self.pkcs10MediaType)
            let csr = try RequestBody.base64(try await RequestBody.collect(request), what: "a PKCS#10 request")
            let deviceID: DeviceID
            do {
                deviceID = try DeviceID(peer.deviceID)
                _ = try authority.ca.validateCSR(csr, deviceID: deviceID, source: "EST re-enroll request for \(peer.deviceID)")
            } catch let error as WardenError {
                throw Self.csrError(error)
            }
            let issued: IssuedCertificate
            do {
                issued = try authority.renew(deviceID, currentSerial: peer.serial, csr: csr, now: Date())
            } catch let error as WardenError {
                switch error.code {
                case .policyViolation, .notFound: throw WardenHTTPError(.forbidden, error.message)
                default: throw Self.serverError(error)
                }
            }
            context.logger.info(
                "EST renewal", metadata: ["device": "\(deviceID)", "serial": "\(issued.serial)", "previous": "\(peer.serial)"])
            metrics.renewal(success: true)
            return Self.certsOnly(try PKCS7CertsOnly.encode(certificatesDER: [issued.der]))
        } catch {
            metrics.renewal(success: false)
            throw error
        }
    }

    static let challenge: HTTPFields = [.wwwAuthenticate: "Basic realm=\"warden-est\""]

    /// `deviceID:token` from `Authorization: Basic` (RFC 7617); 401 with a challenge when missing or malformed.
    static func basicCredentials(_ request: Request) throws -> (DeviceID, String) {
        guard let header = request.headers[.authorization] else {
            throw WardenHTTPError(.unauthorized, "simpleenroll needs HTTP Basic authentication with deviceID:token", headers: challenge)
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", parts[1].utf8.count <= 1_024,
            let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let text = String(validating: Array(data), as: UTF8.self),
            let colon = text.firstIndex(of: ":")
        else {
            throw WardenHTTPError(.unauthorized, "the Authorization header must be Basic base64(deviceID:token)", headers: challenge)
        }
        let token = String(text[text.index(after: colon)...])
        guard let deviceID = try? DeviceID(String(text[..<colon])), !token.isEmpty else {
            throw WardenHTTPError(.unauthorized, "the Basic user name must be a valid device id and the password its token", headers: challenge)
        }
        return (deviceID, token)
    }

    /// A refused CSR: 400 when it is malformed, 403 when policy forbids it (CN mismatch, key type, reserved name).
    static func csrError(_ error: WardenError) -> WardenHTTPError {
        switch error.code {
        case .policyViolation: WardenHTTPError(.forbidden, error.message)
        case .badInput, .signatureInvalid: WardenHTTPError(.badRequest, error.message)
        default: serverError(error)
        }
    }

    static func serverError(_ error: WardenError) -> WardenHTTPError {
        switch error.code {
        case .storage: WardenHTTPError(.serviceUnavailable, "the registry is unavailable; retry later")
        case .badInput: WardenHTTPError(.badRequest, error.message)
        default: WardenHTTPError(.internalServerError, "internal error")
        }
    }

    /// 200 with a base64 certs-only body (RFC 7030 §4.1.3, §4.2.3; RFC 8951: base64, no Content-Transfer-Encoding
    /// needed, sent anyway for older clients).
    static func certsOnly(_ der: [UInt8]) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: certsOnlyContentType, contentTransferEncoding: "base64"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: RequestBody.base64Lines(der))))
    }

    // A constant, valid field name: the initializer only fails for names that are not RFC 9110 tokens.
    static let contentTransferEncoding = HTTPFields.Element.Name("Content-Transfer-Encoding")!
}
