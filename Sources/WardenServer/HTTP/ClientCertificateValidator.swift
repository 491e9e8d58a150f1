import Foundation
import Synchronization
import WardenCore
import WardenPKI
import WardenStore

/// Decides whether a client certificate chain identifies an enrolled, active device.
///
/// Two checks, both required:
/// 1. the chain, with the SAME ``ChainVerifier`` code path as `warden cert verify` (trust = the root, untrusted =
///    the issuing CA, CRL = the current `ca/crl.pem`, purpose = client authentication);
/// 2. the registry: the CN is a device id of an active device, and the serial is one of that device's recorded
///    certificates and is not revoked.
///
/// Chain results are cached briefly (keyed by the chain bytes and the CRL version), registry lookups never are, so a
/// revocation takes effect on the next handshake or request.
final class ClientCertificateValidator: Sendable {
    /// The verdict on one presented chain.
    enum Outcome: Sendable, Equatable {
        /// Every check passed.
        case accepted(PeerIdentity)
        /// Refused, with a metric label and a sentence for the client.
        case rejected(ServerMetrics.VerificationFailure, String)
    }

    let trustPEM: [UInt8]
    let issuingPEM: [UInt8]
    let crlFile: CRLFile
    let registry: Registry
    let metrics: ServerMetrics
    /// How long a chain verdict is reused (the registry is still checked every time).
    static let cacheLifetime: TimeInterval = 30
    static let cacheCapacity = 4_096

    private let verifier = Mutex<(generation: UInt64?, verifier: ChainVerifier?)>((nil, nil))
    private let cache = Mutex<[String: (expires: Date, verification: LeafVerification)]>([:])

    init(trustPEM: [UInt8], issuingPEM: [UInt8], crlFile: CRLFile, registry: Registry, metrics: ServerMetrics) throws {
        self.trustPEM = trustPEM
        self.issuingPEM = issuingPEM
        self.crlFile = crlFile
        self.registry = registry
        self.metrics = metrics
        _ = try currentVerifier()
    }

    /// The verifier for the current CRL, rebuilt when the CRL file changes.
    func currentVerifier() throws -> (generation: UInt64, verifier: ChainVerifier) {
        let snapshot = crlFile.current()
        let generation = snapshot?.generation ?? 0
        if let cached = verifier.withLock({ $0.generation == generation ? $0.verifier : nil }) {
            return (generation, cached)
        }
        let built = try ChainVerifier(
            trustPEM: trustPEM, trustSource: "root CA", untrustedPEM: issuingPEM, untrustedSource: "issuing CA",
            crlData: snapshot.map { [(bytes: $0.pem, source: crlFile.path)] } ?? [])
        verifier.withLock { $0 = (generation, built) }
        return (generation, built)
    }

    /// Validates a chain as presented (leaf first, DER) and counts a refusal in the metrics.
    func validate(chainDER: [[UInt8]], now: Date = Date()) async -> Outcome {
        let outcome = await evaluate(chainDER: chainDER, now: now)
        if case .rejected(let reason, _) = outcome { metrics.verificationFailure(reason) }
        return outcome
    }

    func evaluate(chainDER: [[UInt8]], now: Date) async -> Outcome {
        guard let leaf = chainDER.first else { return .rejected(.chainInvalid, "no client certificate was presented") }
        let verification: LeafVerification
        do {
            verification = try await verifyChain(leaf: leaf, rest: Array(chainDER.dropFirst()), now: now)
        } catch {
            return .rejected(.chainInvalid, "the client certificate could not be checked: \(error)")
        }
        guard verification.isValid, let serial = verification.serial else {
            if case .invalid(let reasons) = verification.result {
                return .rejected(.chainInvalid, "the client certificate is not valid: \(reasons.first ?? "unknown reason")")
            }
            return .rejected(.chainInvalid, "the client certificate is not valid")
        }
        if let commonName = verification.commonName, OperatorNaming.isOperator(commonName) {
            return evaluateOperator(commonName: commonName, serial: serial, leaf: leaf)
        }
        guard let commonName = verification.commonName, (try? DeviceID.validate(commonName)) != nil else {
            return .rejected(.unknownDevice, "the client certificate does not name a device")
        }
        do {
            guard let device = try registry.device(commonName) else {
                return .rejected(.unknownDevice, "device '\(commonName)' is not enrolled")
            }
            guard device.status == .active else {
                return .rejected(.deviceRevoked, "device '\(commonName)' is \(device.status.rawValue)")
            }
            guard let status = try registry.certificateStatus(serial: serial), status.deviceID == commonName else {
                return .rejected(.unknownCertificate, "certificate \(serial) was never issued to device '\(commonName)'")
            }
            guard status.revoked == nil else {
                return .rejected(.certificateRevoked, "certificate \(serial) of device '\(commonName)' is revoked")
            }
        } catch {
            return .rejected(.registryError, "the registry could not be read")
        }
        return .accepted(PeerIdentity(deviceID: commonName, serial: serial))
    }

    func verifyChain(leaf: [UInt8], rest: [[UInt8]], now: Date) async throws -> LeafVerification {
        let (generation, chainVerifier) = try currentVerifier()
        let key = "\(generation):" + Digest.hex(Digest.sha256(([leaf] + rest).flatMap { Digest.sha256($0) }))
        if let hit = cache.withLock({ entries in entries[key].flatMap { $0.expires > now ? $0.verification : nil } }) {
            return hit
        }
        let verification = await chainVerifier.verify(leafDER: leaf, chainDER: rest, at: now, purpose: .client)
        cache.withLock { entries in
            if entries.count >= Self.cacheCapacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (now.addingTimeInterval(Self.cacheLifetime), verification)
        }
        return verification
    }
}
