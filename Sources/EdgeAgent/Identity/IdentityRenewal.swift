import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WardenCore
import WardenPKI

/// Certificate renewal over EST `simplereenroll`, keeping the old identity until the new one is known to work.
///
/// Files in the state directory:
/// - `device.key` / `device.crt.pem`: the identity in use;
/// - `device.next.key` (0600) / `device.next.crt.pem` (0644): a renewed identity staged by ``renew(now:)``;
/// - `device.prev.key` / `device.prev.crt.pem`: the identity replaced by the last ``promote()``.
///
/// The caller decides when the staged identity is proven: the MQTT session promotes only after a successful connect
/// with it, `warden-agent renew` after an mTLS request to the authority. A new key is generated for every renewal.
public struct IdentityRenewal: Sendable {
    /// The agent's state directory.
    public let directory: String
    /// The authority's EST endpoint.
    public let est: ESTClient

    /// Renewal of the identity in `directory` through `est`.
    public init(directory: String, est: ESTClient) {
        self.directory = directory
        self.est = est
    }

    /// `DIR/device.key`.
    public var keyPath: String { directory + "/device.key" }
    /// `DIR/device.crt.pem`.
    public var certificatePath: String { directory + "/device.crt.pem" }
    /// `DIR/device.next.key`: the staged key.
    public var nextKeyPath: String { directory + "/device.next.key" }
    /// `DIR/device.next.crt.pem`: the staged certificate.
    public var nextCertificatePath: String { directory + "/device.next.crt.pem" }
    /// `DIR/device.prev.key`: the key before the last promotion.
    public var previousKeyPath: String { directory + "/device.prev.key" }
    /// `DIR/device.prev.crt.pem`: the certificate before the last promotion.
    public var previousCertificatePath: String { directory + "/device.prev.crt.pem" }

    /// The share of the lifetime after `notBefore` at which renewal is due, before jitter.
    public static let dueFraction = 2.0 / 3.0
    /// The largest jitter, as a share of the lifetime, either way.
    public static let jitterFraction = 0.05

    /// When a certificate valid from `notBefore` to `notAfter` is due for renewal: `notBefore + 2/3 · lifetime`, moved
    /// by `jitter · 5 % · lifetime` (`jitter` is clamped to -1…1), so a fleet enrolled together does not renew together.
    public static func renewalTime(notBefore: Date, notAfter: Date, jitter: Double) -> Date {
        let lifetime = max(0, notAfter.timeIntervalSince(notBefore))
        let clamped = min(1, max(-1, jitter.isFinite ? jitter : 0))
        return notBefore.addingTimeInterval(lifetime * dueFraction + clamped * jitterFraction * lifetime)
    }

    /// Whether renewal is due at `now`, with a jitter drawn uniformly from -1…1 by `generator` (pass a seeded
    /// generator such as ``RenewalRandom`` for a deterministic answer).
    public static func renewalDue<G: RandomNumberGenerator>(
        notBefore: Date, notAfter: Date, now: Date, using generator: inout G
    ) -> Bool {
        now >= renewalTime(notBefore: notBefore, notAfter: notAfter, jitter: Double.random(in: -1...1, using: &generator))
    }

    /// The certificate in use.
    /// - Throws: `.notFound` when there is none, `.badInput` when it does not parse.
    public func currentCertificate() throws -> DeviceCertificateInfo {
        guard SecureFile.mode(of: certificatePath) != nil else {
            throw WardenError.notFound("'\(certificatePath)' does not exist; enroll first ('warden-agent enroll')")
        }
        return try DeviceCertificateInfo.read(try SecureFile.read(certificatePath, what: "device certificate"), source: certificatePath)
    }

    /// Whether both staged files exist.
    public var hasStaged: Bool {
        SecureFile.mode(of: nextKeyPath) != nil && SecureFile.mode(of: nextCertificatePath) != nil
    }

    /// Generates a NEW key and CSR, sends `simplereenroll` over mutual TLS with the CURRENT certificate and key,
    /// verifies the answer (our new key, our id, chains to the trust file) and stages it as `device.next.*`.
    /// The identity in use is not touched. A previous staging is replaced.
    /// - Returns: the staged certificate.
    /// - Throws: `.notFound` without a current certificate, `.policyViolation` when the authority refuses (e.g. a
    ///   revoked device) or returns a certificate that is not ours, `.verificationFailed`, `.storage`.
    @discardableResult
    public func renew(now: Date = Date()) async throws -> DeviceCertificateInfo {
        completeInterruptedPromotion()
        let current = try currentCertificate()
        guard let name = current.commonName, let id = try? DeviceID(name) else {
            throw WardenError.badInput("'\(certificatePath)' does not name a valid device id in its CN")
        }
        let request = try CSRBuilder.generate(for: id)
        let issued = try await est.simpleReenroll(
            csr: Array(request.csrPEM.utf8), csrSource: "generated renewal CSR", deviceID: id, newPrivateKeyPEM: request.privateKeyPEM,
            currentCertFile: certificatePath, currentKeyFile: keyPath, now: now)
        guard issued.info.serial != current.serial else {
            throw WardenError.policy("the authority returned the current certificate (serial \(current.serial)) instead of a new one")
        }
        discardStaged()
        // Key first: a certificate without its key is never left staged (see completeInterruptedPromotion()).
        try SecureFile.writeAtomically(Array(request.privateKeyPEM.utf8), to: nextKeyPath, mode: 0o600)
        do {
            try SecureFile.writeAtomically(Array(issued.chainPEM.utf8), to: nextCertificatePath, mode: 0o644)
        } catch {
            discardStaged()
            throw error
        }
        return issued.info
    }

    /// Makes the staged identity the one in use: the current files become `device.prev.*` (replacing older ones), then
    /// `device.next.key` and `device.next.crt.pem` are renamed over `device.key` and `device.crt.pem`.
    ///
    /// Each rename is atomic; a crash between the two leaves the new key with the staged certificate beside it, which
    /// ``completeInterruptedPromotion()`` (run by ``renew(now:)`` and by this method) finishes.
    /// - Throws: `.notFound` when nothing is staged, `.policyViolation` when the staged certificate is not for the
    ///   staged key, `.storage`.
    public func promote() throws {
        completeInterruptedPromotion()
        guard hasStaged else { throw WardenError.notFound("no renewed identity is staged in '\(directory)'") }
        let nextKey = try SecureFile.readText(nextKeyPath, what: "staged key")
        let nextCertificate = try DeviceCertificateInfo.read(
            try SecureFile.read(nextCertificatePath, what: "staged certificate"), source: nextCertificatePath)
        guard nextCertificate.isFor(privateKeyPEM: nextKey) else {
            throw WardenError.policy("'\(nextCertificatePath)' is not for '\(nextKeyPath)'; discard the staged identity")
        }
        for (current, previous) in [(keyPath, previousKeyPath), (certificatePath, previousCertificatePath)] {
            unlink(previous)
            if SecureFile.mode(of: current) != nil, link(current, previous) != 0 {
                throw WardenError.storage("cannot keep '\(current)' as '\(previous)': \(String(cString: strerror(errno)))")
            }
        }
        try Self.move(nextKeyPath, keyPath)
        try Self.move(nextCertificatePath, certificatePath)
        AgentIdentity.syncDirectory(directory)
    }

    /// Removes the staged identity, if any (after it failed to work, or before a new renewal).
    public func discardStaged() {
        unlink(nextKeyPath)
        unlink(nextCertificatePath)
    }

    /// Finishes a promotion interrupted between its two renames: a staged certificate without a staged key, for the
    /// key in use, is renamed into place; one for another key is removed.
    /// - Returns: whether a promotion was finished.
    @discardableResult
    public func completeInterruptedPromotion() -> Bool {
        guard SecureFile.mode(of: nextKeyPath) == nil, SecureFile.mode(of: nextCertificatePath) != nil else { return false }
        guard let key = try? SecureFile.readText(keyPath, what: "device key"),
            let bytes = try? SecureFile.read(nextCertificatePath, what: "staged certificate"),
            let staged = try? DeviceCertificateInfo.read(bytes, source: nextCertificatePath), staged.isFor(privateKeyPEM: key)
        else {
            unlink(nextCertificatePath)
            return false
        }
        guard (try? Self.move(nextCertificatePath, certificatePath)) != nil else { return false }
        AgentIdentity.syncDirectory(directory)
        return true
    }

    static func move(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else {
            throw WardenError.storage("cannot rename '\(from)' to '\(to)': \(String(cString: strerror(errno)))")
        }
    }
}

/// A small seeded generator (SplitMix64) for deterministic renewal jitter in tests and reproducible schedules.
public struct RenewalRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
