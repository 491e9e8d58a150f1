import Foundation
import Hummingbird
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenPolicy
import WardenStore

/// The admin API under `/api/v1` on the HTTPS (mutual TLS) listener. Every route is authorized by
/// ``AuthorizationMiddleware`` for its `api:` action before its handler runs.
///
/// ```
/// GET  /api/v1/audit[?device=ID]          api:audit.read    device:* (or device:ID)   audit events, JSON
/// GET  /api/v1/devices                    api:device.list   device:*                  devices, JSON
/// POST /api/v1/devices/{id}/enroll        api:device.enroll device:{id}   body: PEM CSR -> 201, leaf + issuing CA PEM
/// POST /api/v1/devices/{id}/revoke[?reason=R]  api:device.revoke device:{id}            -> revocation JSON
/// ```
struct AdminRoutes {
    let authority: Authority
    let authorizer: PolicyAuthorizer

    func register(on router: Router<WardenRequestContext>) {
        func guarded(_ action: String, _ resource: @escaping @Sendable (Request, WardenRequestContext) -> String) -> RouterGroup<WardenRequestContext> {
            router.group("/api/v1").add(middleware: AuthorizationMiddleware(authorizer: authorizer, action: action, resource: resource))
        }
        guarded("api:audit.read", { request, _ in request.uri.queryParameters.get("device").map { "device:" + $0 } ?? "device:*" })
            .get("audit") { request, _ in try audit(request) }
        guarded("api:device.list", { _, _ in "device:*" })
            .get("devices") { _, _ in try devices() }
        guarded("api:device.enroll", { _, context in "device:" + (context.parameters.get("id") ?? "") })
            .post("devices/{id}/enroll") { request, context in try await enroll(request, context: context) }
        guarded("api:device.revoke", { _, context in "device:" + (context.parameters.get("id") ?? "") })
            .post("devices/{id}/revoke") { request, context in try await revoke(request, context: context) }
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(try encoder.encode(value)))))
    }

    func audit(_ request: Request) throws -> Response {
        let device = request.uri.queryParameters.get("device")
        if let device, (try? DeviceID.validate(device)) == nil {
            throw WardenHTTPError(.badRequest, "device '\(device.prefix(80))' is not a valid device id")
        }
        return try Self.json(try authority.registry.auditEvents(deviceID: device))
    }

    func devices() throws -> Response {
        try Self.json(try authority.registry.devices())
    }

    /// The authority acting for the request's operator: the audit log names the certificate's CN and role.
    func acting(_ context: WardenRequestContext) -> Authority {
        guard let peer = context.peer else { return authority }
        return authority.acting(as: "api:\(peer.deviceID)" + (peer.role.map { " (role:\($0))" } ?? ""))
    }

    func deviceID(_ context: WardenRequestContext) throws -> DeviceID {
        let text = context.parameters.get("id") ?? ""
        do {
            return try DeviceID(text)
        } catch let error as WardenError {
            throw WardenHTTPError(.badRequest, error.message)
        }
    }

    func enroll(_ request: Request, context: WardenRequestContext) async throws -> Response {
        let id = try deviceID(context)
        let csr = try await RequestBody.collect(request)
        var groups: [String] = []
        for group in request.uri.queryParameters.getAll("group") {
            do {
                try Authority.validateGroup(group)
            } catch let error as WardenError {
                throw WardenHTTPError(.badRequest, error.message)
            }
            groups.append(group)
        }
        do {
            let issued = try acting(context).enroll(
                id, csr: csr, csrSource: "request body", groups: groups, validity: nil, now: Date())
            context.logger.info("API enrollment", metadata: ["device": "\(id)", "serial": "\(issued.serial)", "by": "\(context.peer?.deviceID ?? "-")"])
            return Response(
                status: .created, headers: [.contentType: "application/pem-certificate-chain"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: issued.chainPEM)))
        } catch let error as WardenError {
            switch error.code {
            case .alreadyExists: throw WardenHTTPError(.conflict, error.message)
            case .badInput, .policyViolation, .signatureInvalid: throw WardenHTTPError(.badRequest, error.message)
            default: throw WardenHTTPError(.internalServerError, "the enrollment could not be recorded")
            }
        }
    }

    struct RevokeOutput: Encodable {
        var device: String
        var reason: String
        var serials: [String]
        var crlNumber: UInt64
    }

    func revoke(_ request: Request, context: WardenRequestContext) async throws -> Response {
        let id = try deviceID(context)
        let name = request.uri.queryParameters.get("reason") ?? "unspecified"
        guard let reason = RevocationReason(name: name), reason.isValidInCompleteCRL else {
            throw WardenHTTPError(.badRequest, "reason '\(name.prefix(40))' is not a valid revocation reason")
        }
        let now = Date()
        let result: Authority.RevocationResult
        do {
            result = try acting(context).revoke(id, reason: reason, now: now)
        } catch let error as WardenError {
            switch error.code {
            case .notFound: throw WardenHTTPError(.notFound, error.message)
            case .alreadyExists: throw WardenHTTPError(.conflict, error.message)
            default: throw WardenHTTPError(.internalServerError, "the revocation could not be recorded")
            }
        }
        // The broker: the new CRL now (for new handshakes); `warden serve`'s broker sync removes the device's client,
        // which disconnects its live session, within 0.5 s.
        if let layout = BrokerMetadata.registered(home: authority.home.path),
            let pem = try? SecureFile.readText(authority.home.ca.crl, limit: 16 * 1024 * 1024)
        {
            do {
                _ = try CRLPublisher.publish(crlPEM: pem, issuerPEM: try authority.ca.issuingPEM, layout: layout, now: now)
            } catch {
                context.logger.error("broker CRL not updated after API revoke: \(error)")
            }
        }
        return try Self.json(RevokeOutput(device: id.rawValue, reason: reason.name, serials: result.serials, crlNumber: result.crlNumber))
    }
}
