import Hummingbird
import NIOCore
import NIOSSL

/// Attaches the verified device identity to every request on a TLS connection whose client presented a
/// certificate, and refuses (403) the request if that certificate no longer passes: the handshake already
/// checked it, but a keep-alive connection outlives a revocation, so the registry is consulted on every request.
struct PeerCertificateMiddleware: RouterMiddleware {
    typealias Context = WardenRequestContext
    let validator: ClientCertificateValidator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // No TLS handler (the plain-HTTP port) or no certificate: an anonymous request.
        guard let certificate = try? await context.channel.nioSSL_peerCertificate().get() else {
            return try await next(request, context)
        }
        let der: [UInt8]
        do {
            der = try certificate.toDERBytes()
        } catch {
            throw WardenHTTPError(.forbidden, "the client certificate cannot be read")
        }
        switch await validator.validate(chainDER: [der]) {
        case .rejected(_, let message):
            throw WardenHTTPError(.forbidden, message)
        case .accepted(let identity):
            var context = context
            context.peer = identity
            return try await next(request, context)
        }
    }
}

extension WardenRequestContext {
    /// The authenticated device, or 401 when the client presented no certificate.
    func requirePeer() throws -> PeerIdentity {
        guard let peer, peer.role == nil else {
            throw WardenHTTPError(.unauthorized, "this route requires a device client certificate (mutual TLS)")
        }
        return peer
    }
}
