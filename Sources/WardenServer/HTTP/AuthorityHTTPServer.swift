import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import WardenAuthority
import WardenCore
import WardenPKI

/// Warden's HTTP API: EST enrollment and renewal, OCSP, the CRL, health and metrics.
///
/// - HTTPS (`httpsPort`): TLS ≥ 1.2 with optional client certificates checked at the handshake and on every request
///   (chain + CRL + registry); every route.
/// - Plain HTTP (`httpPort`, optional): only signed or harmless objects — `GET /crl`, OCSP and `/healthz` — because
///   CRL distribution points and OCSP URLs are usually `http` (RFC 5280 §4.2.1.13, RFC 6960 Appendix A).
///
/// ```
/// GET  /.well-known/est/cacerts         certs-only PKCS#7 (base64) of issuing CA + root
/// POST /.well-known/est/simpleenroll    Basic deviceID:token, body base64 PKCS#10  -> certs-only PKCS#7 of the leaf
/// POST /.well-known/est/simplereenroll  mTLS with the current certificate, same body -> new leaf
/// GET  /crl                             DER CRL (application/pkix-crl)
/// POST /ocsp, GET /ocsp/{base64}        RFC 6960 responder signed by the issuing CA
/// GET  /healthz, GET /metrics           "ok" when the registry answers; Prometheus text
/// GET|POST /api/v1/…                    admin API, authorized by policy (see AdminRoutes)
/// ```
public struct AuthorityHTTPServer: Sendable {
    let authority: Authority
    let host: String
    let httpsPort: Int
    let httpPort: Int?
    let logger: Logger
    let metrics: ServerMetrics
    let crlFile: CRLFile
    let validator: ClientCertificateValidator
    let est: ESTRoutes
    let ocsp: OCSPRoutes
    let tlsChain: [NIOSSLCertificate]
    let tlsKey: NIOSSLPrivateKey
    let trustRoots: [NIOSSLCertificate]
    /// Called with the bound port and whether it is the TLS listener once each listener is up (tests bind port 0).
    var onListening: (@Sendable (_ port: Int, _ tls: Bool) async -> Void)?

    /// Prepares the server; nothing listens until ``run()`` (or the services of `makeServices()`) run.
    ///
    /// Publishes a first CRL if the home has none, so `/crl`, OCSP and the handshake always have one.
    /// - Parameters:
    ///   - serverChainPEM: the server certificate followed by the issuing CA, e.g. from
    ///     `CertificateAuthority.issueServiceCertificate(commonName: "warden-api", purposes: [.server], …)`.
    ///   - serverKeyPEM: its unencrypted PKCS#8 key.
    /// - Throws: `.badInput` for unusable ports, certificates or keys; CA and registry errors.
    public init(
        authority: Authority, host: String = "127.0.0.1", httpsPort: Int, httpPort: Int? = nil, serverChainPEM: String,
        serverKeyPEM: String
    ) throws {
        try self.init(
            authority: authority, host: host, httpsPort: httpsPort, httpPort: httpPort, serverChainPEM: serverChainPEM,
            serverKeyPEM: serverKeyPEM, logger: Logger(label: "warden.http"))
    }

    init(
        authority: Authority, host: String, httpsPort: Int, httpPort: Int?, serverChainPEM: String, serverKeyPEM: String,
        logger: Logger
    ) throws {
        for port in [httpsPort] + (httpPort.map { [$0] } ?? []) where !(0...65_535).contains(port) {
            throw WardenError.badInput("port \(port) is not between 0 and 65535")
        }
        if let httpPort, httpPort == httpsPort, httpPort != 0 {
            throw WardenError.badInput("the HTTP and HTTPS ports must differ (both are \(httpPort))")
        }
        self.authority = authority
        self.host = host
        self.httpsPort = httpsPort
        self.httpPort = httpPort
        self.logger = logger
        (tlsChain, tlsKey) = try ServerTLS.identity(chainPEM: serverChainPEM, keyPEM: serverKeyPEM)
        let rootPEM = try SecureFile.read(authority.home.ca.rootCertificate, what: "root CA certificate")
        do {
            trustRoots = try NIOSSLCertificate.fromPEMBytes(rootPEM)
        } catch {
            throw WardenError.badInput("root CA certificate '\(authority.home.ca.rootCertificate)' is not valid PEM")
        }
        if SecureFile.mode(of: authority.home.ca.crl) == nil {
            _ = try authority.issueCRL(now: Date())
        }
        metrics = ServerMetrics()
        crlFile = CRLFile(path: authority.home.ca.crl)
        validator = try ClientCertificateValidator(
            trustPEM: rootPEM, issuingPEM: Array(try authority.ca.issuingPEM.utf8), crlFile: crlFile,
            registry: authority.registry, metrics: metrics)
        est = try ESTRoutes(authority: authority, metrics: metrics)
        ocsp = OCSPRoutes(responder: authority.ca.ocspResponder(), registry: authority.registry, metrics: metrics)
    }

    /// The HTTPS application and, if configured, the plain-HTTP one, as services for a `ServiceGroup`.
    func makeServices() throws -> [any Service] {
        let onListening = self.onListening
        let https = Application(
            router: httpsRouter(),
            server: try .tls(
                .http1(configuration: .init(idleTimeout: HTTPLimits.idleTimeout)),
                configuration: ServerTLS.configuration(
                    chain: tlsChain, key: tlsKey, trustRoots: trustRoots, validator: validator, logger: logger)),
            configuration: ApplicationConfiguration(address: .hostname(host, port: httpsPort), serverName: nil),
            onServerRunning: { channel in await onListening?(channel.localAddress?.port ?? -1, true) },
            logger: logger)
        var services: [any Service] = [https]
        if let httpPort {
            services.append(
                Application(
                    router: httpRouter(),
                    server: .http1(configuration: .init(idleTimeout: HTTPLimits.idleTimeout)),
                    configuration: ApplicationConfiguration(address: .hostname(host, port: httpPort), serverName: nil),
                    onServerRunning: { channel in await onListening?(channel.localAddress?.port ?? -1, false) },
                    logger: logger))
        }
        return services
    }

    /// Runs the server until SIGTERM/SIGINT (graceful shutdown) or until the calling task is cancelled.
    public func run() async throws {
        try await run(handlingSignals: true)
    }

    /// Runs the server in its own `ServiceGroup`; with `handlingSignals`, SIGTERM and SIGINT shut it down gracefully.
    ///
    /// Signal handling is process-wide and permanent: swift-service-lifecycle sets SIGTERM/SIGINT to SIG_IGN (and
    /// watches them with a dispatch source), and child processes started afterwards inherit "ignored", so a child can
    /// then only be stopped with SIGKILL. Tests therefore run with `handlingSignals: false` and stop by cancellation.
    func run(handlingSignals: Bool) async throws {
        let group = ServiceGroup(
            services: try makeServices(), gracefulShutdownSignals: handlingSignals ? [.sigterm, .sigint] : [],
            cancellationSignals: [], logger: logger)
        try await group.run()
    }

    func httpsRouter() -> Router<WardenRequestContext> {
        let router = Router(context: WardenRequestContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: PeerCertificateMiddleware(validator: validator))
        est.register(on: router)
        ocsp.register(on: router)
        CRLRoutes(crlFile: crlFile).register(on: router)
        OperationsRoutes(registry: authority.registry, metrics: metrics).register(on: router)
        AdminRoutes(authority: authority, authorizer: PolicyAuthorizer(registry: authority.registry, home: authority.home.path))
            .register(on: router)
        TUFRoutes(repository: FirmwareRepository(home: authority.home)).register(on: router)
        return router
    }

    func httpRouter() -> Router<WardenRequestContext> {
        let router = Router(context: WardenRequestContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        ocsp.register(on: router)
        CRLRoutes(crlFile: crlFile).register(on: router)
        OperationsRoutes(registry: authority.registry, metrics: metrics).registerHealth(on: router)
        return router
    }
}
