import Foundation
import Synchronization

/// Lets the rest of the agent steer the MQTT session without owning it: ask for a fresh connection (after a config
/// change), try a staged identity on the next connection and learn whether it worked (certificate renewal keeps
/// the old identity until the new one has connected), or hear of every failed connection attempt.
public final class SessionControl: Sendable {
    /// A certificate and key file pair.
    public struct Identity: Sendable, Equatable {
        /// The certificate (PEM, leaf first).
        public var certFile: String
        /// The private key (PEM).
        public var keyFile: String

        /// Creates an identity.
        public init(certFile: String, keyFile: String) {
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    /// The outcome of trying a staged identity.
    public enum TrialOutcome: Sendable, Equatable {
        /// The broker accepted the staged identity.
        case connected
        /// Connecting with it failed, with the error.
        case failed(String)
    }

    private struct State {
        var epoch = 0
        var trial: Identity?
        var outcome: (@Sendable (TrialOutcome) -> Void)?
        var failureObservers: [@Sendable (String) -> Void] = []
    }

    private let state = Mutex(State())

    /// Creates a control with nothing requested.
    public init() {}

    /// Increases with every reconnect request; the session leaves a connection whose epoch is stale.
    public var epoch: Int { state.withLock { $0.epoch } }

    /// Asks the session to close the current connection (cleanly, announcing offline) and connect again.
    public func requestReconnect() {
        state.withLock { $0.epoch += 1 }
    }

    /// Uses `identity` for the next connection attempt only, reports the result to `outcome`, and reconnects now.
    /// The session goes back to its configured identity afterwards either way; the caller promotes the staged
    /// files on `.connected`.
    public func tryIdentity(_ identity: Identity, outcome: @escaping @Sendable (TrialOutcome) -> Void) {
        state.withLock { state in
            state.trial = identity
            state.outcome = outcome
            state.epoch += 1
        }
    }

    /// Calls `observer` with the error of every failed connection attempt, whichever identity it used (the config
    /// trial records the last one as the reason of a revert).
    public func observeConnectionFailures(_ observer: @escaping @Sendable (String) -> Void) {
        state.withLock { $0.failureObservers.append(observer) }
    }

    /// The identity for the next attempt: the staged one under trial, else `default`.
    func identity(default fallback: (String, String)) -> Identity {
        state.withLock { $0.trial } ?? Identity(certFile: fallback.0, keyFile: fallback.1)
    }

    /// The session connected with `identity`.
    func connected(identity: Identity) {
        finishTrial(identity, .connected)
    }

    /// The session failed to connect with `identity`.
    func connectFailed(identity: Identity, error: String) {
        finishTrial(identity, .failed(error))
        for observer in state.withLock({ $0.failureObservers }) { observer(error) }
    }

    private func finishTrial(_ identity: Identity, _ result: TrialOutcome) {
        let callback: (@Sendable (TrialOutcome) -> Void)? = state.withLock { state in
            guard state.trial == identity else { return nil }
            defer {
                state.trial = nil
                state.outcome = nil
            }
            return state.outcome
        }
        callback?(result)
    }
}
