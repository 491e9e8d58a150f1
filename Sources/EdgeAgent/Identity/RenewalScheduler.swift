import Foundation
import Synchronization
import WardenCore
import WardenPKI

/// The background renewal loop of `warden-agent run`: checks every ``checkInterval`` whether the certificate is due,
/// renews (``IdentityRenewal/renew(now:)``), asks the MQTT session to connect with the staged identity
/// (``SessionControl/tryIdentity(_:outcome:)``) and promotes it only once the broker accepted it. A failure discards
/// the staged identity and retries later with exponential backoff; the identity in use is never touched until the
/// new one has connected.
public struct RenewalScheduler: Sendable {
    /// The renewal of the agent's state directory.
    public let renewal: IdentityRenewal
    /// The running session's control.
    public let control: SessionControl
    /// How often the due check runs.
    public var checkInterval: Duration = .seconds(300)
    /// The first retry delay after a failure; doubled on each further failure up to ``maximumBackoff``.
    public var initialBackoff: Duration = .seconds(300)
    /// The longest retry delay.
    public var maximumBackoff: Duration = .seconds(6 * 3600)
    /// How long the session may take to report on a staged identity before the trial counts as failed.
    public var trialTimeout: Duration = .seconds(600)
    /// Where progress lines go (never key material).
    public let log: @Sendable (String) -> Void

    /// A scheduler renewing through `renewal` and trying new identities on `control`'s session.
    public init(renewal: IdentityRenewal, control: SessionControl, log: @escaping @Sendable (String) -> Void) {
        self.renewal = renewal
        self.control = control
        self.log = log
    }

    /// Runs until the task is cancelled.
    public func run() async {
        var generator = SystemRandomNumberGenerator()
        var failures = 0
        while !Task.isCancelled {
            var delay = checkInterval
            do {
                let current = try renewal.currentCertificate()
                if IdentityRenewal.renewalDue(notBefore: current.notBefore, notAfter: current.notAfter, now: Date(), using: &generator) {
                    try await renewOnce(current: current)
                    failures = 0
                }
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                renewal.discardStaged()
                delay = backoff(after: failures)
                let message = (error as? WardenError)?.message ?? "\(error)"
                log("certificate renewal failed (\(message)); retrying in \(delay.components.seconds) s")
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }

    /// One renewal: stage, try on the session, promote or discard.
    /// - Throws: whatever the renewal or the trial failed with.
    public func renewOnce(current: DeviceCertificateInfo) async throws {
        let staged = try await renewal.renew()
        log("certificate renewed: serial \(current.serial) -> \(staged.serial) staged; trying it on the broker")
        let outcome = try await trial(SessionControl.Identity(certFile: renewal.nextCertificatePath, keyFile: renewal.nextKeyPath))
        switch outcome {
        case .connected:
            try renewal.promote()
            log("renewed identity connected; promoted serial \(staged.serial) (previous kept as device.prev.*)")
        case .failed(let reason):
            renewal.discardStaged()
            throw WardenError.storage("the broker did not accept the renewed identity: \(reason)")
        }
    }

    /// Asks the session to connect with `identity` and waits for its verdict (or ``trialTimeout``).
    func trial(_ identity: SessionControl.Identity) async throws -> SessionControl.TrialOutcome {
        let verdict = Verdict()
        control.tryIdentity(identity) { outcome in verdict.value.withLock { $0 = outcome } }
        let deadline = ContinuousClock.now + trialTimeout
        while ContinuousClock.now < deadline {
            if let outcome = verdict.value.withLock({ $0 }) { return outcome }
            try await Task.sleep(for: .milliseconds(250))
        }
        return .failed("no connection with the renewed identity within \(trialTimeout.components.seconds) s")
    }

    /// Exponential backoff: initial · 2^(failures-1), capped.
    func backoff(after failures: Int) -> Duration {
        let factor = 1 << min(max(failures - 1, 0), 16)
        let delay = initialBackoff * factor
        return delay < maximumBackoff ? delay : maximumBackoff
    }

    /// The session's report on one trial, written from its callback.
    final class Verdict: Sendable {
        let value = Mutex<SessionControl.TrialOutcome?>(nil)
    }
}
