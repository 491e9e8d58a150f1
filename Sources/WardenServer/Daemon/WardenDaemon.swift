import Foundation
import Logging
import Synchronization
import ServiceLifecycle
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenPolicy

/// `warden serve`: the long-running authority. One ServiceGroup runs the HTTPS API, the broker supervisor and the
/// CRL refresher; SIGTERM or SIGINT shuts all of them down gracefully (the broker gets SIGTERM and is reaped).
public struct WardenDaemon: Sendable {
    /// What to run.
    public struct Configuration: Sendable {
        /// The authority (issuing CA + registry).
        public var authority: Authority
        /// The broker setup to supervise, if any.
        public var broker: BrokerLayout?
        /// HTTPS port; nil disables the HTTP API.
        public var httpsPort: Int?
        /// Plain-HTTP port for CRL and OCSP; nil disables it.
        public var httpPort: Int?
        /// Address the HTTP listeners bind.
        public var host: String
        /// How often the CRL freshness and the broker state are checked.
        public var checkInterval: Duration
        /// The passphrase of the firmware repository's online keys; with it, `serve` re-signs TUF metadata before expiry.
        public var firmwarePassphrase: [UInt8]?

        /// Creates a configuration.
        public init(
            authority: Authority, broker: BrokerLayout?, httpsPort: Int?, httpPort: Int?, host: String = "127.0.0.1",
            checkInterval: Duration = .seconds(30), firmwarePassphrase: [UInt8]? = nil
        ) {
            self.firmwarePassphrase = firmwarePassphrase
            self.authority = authority
            self.broker = broker
            self.httpsPort = httpsPort
            self.httpPort = httpPort
            self.host = host
            self.checkInterval = checkInterval
        }
    }

    let configuration: Configuration

    /// Creates the daemon.
    public init(_ configuration: Configuration) { self.configuration = configuration }

    /// Runs until SIGTERM/SIGINT.
    public func run() async throws {
        var logger = Logger(label: "warden.serve")
        logger.logLevel = .info
        let authority = configuration.authority
        var services: [any Service] = []
        if let layout = configuration.broker {
            let initial = try PolicyRelease.inForce(home: authority.home.path, registry: authority.registry)
            let initialVersion = try authority.registry.activePolicyNumber()
            let log = logger
            // The broker must start with a current CRL: an expired one locks everyone out.
            try CRLRefresher(authority: authority, layout: layout, logger: log).refreshIfNeeded(now: Date())
            // One task talks to the broker for this process, so its control session is never taken over by
            // itself: a full resync after every broker (re)start, and a membership sync within ~0.5 s of any
            // registry change (EST enrollments here, CLI commands elsewhere).
            let needsResync = Atomic<Bool>(false)
            let supervisor = try BrokerSupervisor(
                layout: layout, onStart: { needsResync.store(true, ordering: .sequentiallyConsistent) },
                onEvent: { log.notice("\($0)") })
            services.append(ClosureService(name: "broker") { try await supervisor.run() })
            services.append(
                ClosureService(name: "broker-sync") {
                    var seen = try authority.registry.changeMarker()
                    // The policy version in force: a new one (policy apply/rollback, from any process) rewrites the
                    // roles that changed, within one poll interval.
                    var sync = BrokerSync(authority: authority, policies: initial.documents)
                    var policyVersion = initialVersion
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(250))
                        guard supervisor.currentPID != 0 else { continue }
                        let full = needsResync.load(ordering: .sequentiallyConsistent)
                        let marker = try authority.registry.changeMarker()
                        let version = try authority.registry.activePolicyNumber()
                        guard full || marker != seen || version != policyVersion else { continue }
                        do {
                            let dynsec = try DynsecClient(layout: layout)
                            defer { Task { await dynsec.close() } }
                            if version != policyVersion {
                                let set = try PolicyRelease.inForce(home: authority.home.path, registry: authority.registry)
                                let next = BrokerSync(authority: authority, policies: set.documents)
                                // A full resync below compares every role anyway.
                                let rewritten = full ? [] : try await next.applyPolicyChange(previous: sync.policies, via: dynsec).rewritten
                                sync = next
                                policyVersion = version
                                log.info("policy version \(version) in force", metadata: ["rewritten": "\(rewritten.count)"])
                            }
                            let report = full ? try await sync.reconcile(via: dynsec) : try await sync.reconcileMembership(via: dynsec)
                            await dynsec.close()
                            seen = marker
                            if full {
                                needsResync.store(false, ordering: .sequentiallyConsistent)
                                log.info("broker resynced", metadata: ["created": "\(report.created.count)", "repaired": "\(report.repaired.count)", "removed": "\(report.removed.count)"])
                            } else if !report.created.isEmpty || !report.removed.isEmpty {
                                log.info("broker membership synced", metadata: ["created": "\(report.created)", "removed": "\(report.removed)"])
                            }
                        } catch {
                            log.error("broker sync failed: \(error)")
                        }
                    }
                })
            services.append(contentsOf: try BrokerClientServices.make(authority: authority, layout: layout, logger: log))
            services.append(
                ClosureService(name: "crl-refresher") {
                    try await CRLRefresher(authority: authority, layout: layout, logger: log).run(every: configuration.checkInterval)
                })
        }
        if let httpsPort = configuration.httpsPort {
            let credential = try authority.ca.issueServiceCertificate(
                commonName: "warden-api", purposes: [.server], dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"],
                validity: WardenDuration(seconds: 30 * 86_400), now: Date())
            let server = try AuthorityHTTPServer(
                authority: authority, host: configuration.host, httpsPort: httpsPort, httpPort: configuration.httpPort,
                serverChainPEM: credential.chainPEM, serverKeyPEM: credential.privateKeyPEM)
            services.append(contentsOf: try server.makeServices())
        }
        guard !services.isEmpty else { throw WardenError.badInput("nothing to serve: give --broker DIR and/or --https-port P") }
        if let passphrase = configuration.firmwarePassphrase {
            let refresher = TUFRefresher(repository: FirmwareRepository(home: authority.home), authority: authority, passphrase: passphrase, logger: logger)
            services.append(ClosureService(name: "tuf-refresher") { try await refresher.run(every: configuration.checkInterval) })
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// A service made of one async closure that runs until cancelled.
struct ClosureService: Service {
    let name: String
    let body: @Sendable () async throws -> Void

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await body() }
        } catch is CancellationError {
            // Graceful shutdown cancels the body; that is a normal end, not a failure.
        }
    }
}

/// Keeps the broker's CRL fresh: re-issues it when less than half of its lifetime is left, and re-installs the
/// authority's current CRL if the broker's copy is older.
struct CRLRefresher: Sendable {
    let authority: Authority
    let layout: BrokerLayout
    let logger: Logger

    func run(every interval: Duration) async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            do {
                try refreshIfNeeded(now: Date())
            } catch {
                logger.error("CRL refresh failed: \(error)")
            }
        }
    }

    func refreshIfNeeded(now: Date) throws {
        let issuer = try authority.ca.issuingPEM
        var current = try? SecureFile.readText(authority.home.ca.crl, limit: 16 * 1024 * 1024)
        let lifetime = Authority.defaultCRLValidity.timeInterval
        let fresh = current.flatMap {
            try? CRLValidation.validate(crlPEM: $0, issuerPEM: issuer, now: now, minimumRemaining: lifetime / 2, source: authority.home.ca.crl)
        }
        if fresh == nil {
            current = try authority.issueCRL(now: now).pemEncoded
            logger.info("issued a fresh CRL")
        }
        guard let pem = current else { return }
        let installed = try? SecureFile.readText(layout.crl, limit: 16 * 1024 * 1024)
        if installed != pem {
            try CRLPublisher.publish(crlPEM: pem, issuerPEM: issuer, layout: layout, now: now)
            logger.info("installed the current CRL in the broker")
        }
    }
}
