import Hummingbird
import NIOCore

/// A device authenticated by its TLS client certificate: the chain validated, the device enrolled and active,
/// the certificate issued by Warden and not revoked.
public struct PeerIdentity: Sendable, Equatable {
    /// The device id (the certificate's CN).
    public let deviceID: String
    /// The certificate serial, lowercase hex.
    public let serial: String
    /// For an operator certificate (CN `warden-op-…`, then ``deviceID`` holds that CN): the role it carries; nil for a
    /// device.
    public var role: String? = nil
}

/// The per-request context of Warden's HTTP API: Hummingbird's core storage, the connection's channel (to read
/// the TLS peer certificate) and the verified identity, if the client presented a valid certificate.
public struct WardenRequestContext: RequestContext {
    /// Hummingbird's core storage.
    public var coreContext: CoreRequestContextStorage
    /// The connection.
    public let channel: any Channel
    /// Set by ``PeerCertificateMiddleware`` when the client presented a certificate that passed every check.
    public var peer: PeerIdentity?

    /// Creates the context for one request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        peer = nil
    }

    /// Every route accepts at most this many body bytes; larger bodies get 413.
    public var maxUploadSize: Int { HTTPLimits.maximumBodyBytes }
}

/// Request limits shared by every route.
enum HTTPLimits {
    /// 64 KiB: a CSR or an OCSP request is a few hundred bytes.
    static let maximumBodyBytes = 64 * 1024
    /// A connection with no request for this long is closed, so idle or stalled clients cannot pile up.
    static let idleTimeout = TimeAmount.seconds(60)
}
