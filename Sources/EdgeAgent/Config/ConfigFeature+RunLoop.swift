import Foundation
import Synchronization
import WardenCore

/// The shared state of configs delivered over MQTT: the committed config the agent runs (and reverts to), the one
/// under trial, a newer one waiting for the run loop, and the last rejected version. ``ConfigFeature`` offers
/// candidates; ``ConfigRunLoop`` tries, commits and reverts them. Every file operation happens under one lock, so the
/// staged, current and rejected files always agree with this state.
public final class ConfigUpdates: Sendable {
    /// What ``offer(_:)`` decided.
    public enum Offer: Sendable, Equatable {
        /// The running committed version: nothing to do.
        case running
        /// Older than the running committed version (the accepted floor).
        case older(accepted: Int64)
        /// Already under trial, waiting, or rejected.
        case alreadyKnown
        /// Staged; the run loop will try it.
        case staged
    }

    struct State {
        var base: LoadedConfig
        var trial: LoadedConfig?
        var pending: LoadedConfig?
        var connected: Int64?
        var rejected: Int64
        var lastFailure: String?
    }

    /// The state files.
    public let store: ConfigStore
    /// The agent's health board (entry `config`).
    public let health: AgentHealth
    /// Where progress lines go.
    public let log: @Sendable (String) -> Void
    private let state: Mutex<State>

    /// Creates the coordinator from what ``ConfigStore/startup(configFile:resumeTrial:note:)`` chose.
    public init(store: ConfigStore, startup: ConfigStore.Startup, health: AgentHealth, log: @escaping @Sendable (String) -> Void) {
        self.store = store
        self.health = health
        self.log = log
        let rejected = max(startup.rejection?.version ?? 0, store.rejection()?.version ?? 0)
        state = Mutex(State(base: startup.base, trial: startup.trial, pending: nil, connected: nil, rejected: rejected))
        if let rejection = startup.rejection {
            health.degraded("config", reason: "config version \(rejection.version) rejected: \(rejection.reason)")
        }
    }

    /// The committed config in force.
    public var base: LoadedConfig { state.withLock { $0.base } }

    /// The config under trial, if any.
    public var trial: LoadedConfig? { state.withLock { $0.trial } }

    /// Decides what to do with a verified `candidate` and stages it if it is new.
    /// - Throws: `.storage` if staging fails (nothing changes then).
    public func offer(_ candidate: LoadedConfig) throws -> Offer {
        try state.withLock { state in
            let version = candidate.version
            if version == state.base.version { return .running }
            if version < state.base.version { return .older(accepted: state.base.version) }
            let known = max(state.trial?.version ?? 0, state.pending?.version ?? 0, state.rejected)
            if version <= known { return .alreadyKnown }
            try store.stage(candidate)
            state.pending = candidate
            return .staged
        }
    }

    /// A session running config `version` connected (its ``ConfigFeature`` started).
    func connected(version: Int64) {
        state.withLock { $0.connected = version }
    }

    /// Notes a failed connection attempt: the last one becomes part of the reason of a reverted trial. Wire it to
    /// ``SessionControl/observeConnectionFailures(_:)``.
    public func connectionFailed(_ error: String) {
        state.withLock { $0.lastFailure = String(error.prefix(160)) }
    }

    /// The config the next session runs: a waiting newer one becomes the trial.
    func nextSessionConfig() -> (config: LoadedConfig, isTrial: Bool) {
        state.withLock { state in
            if let pending = state.pending {
                state.trial = pending
                state.pending = nil
            }
            state.connected = nil
            state.lastFailure = nil
            if let trial = state.trial { return (trial, true) }
            return (state.base, false)
        }
    }

    /// Whether a newer config waits for a session restart.
    var hasPending: Bool { state.withLock { $0.pending != nil } }

    /// Commits the trial if its session connected; returns the committed config.
    func commitIfConnected() -> LoadedConfig? {
        state.withLock { state -> LoadedConfig? in
            guard let trial = state.trial, state.connected == trial.version else { return nil }
            do {
                try store.commit(trial, replacing: state.base, keepStaged: state.pending != nil)
            } catch {
                // The session works with it; the files could not record that. Keep trying on the next poll.
                log("config: cannot commit version \(trial.version): \(error)")
                return nil
            }
            state.base = trial
            state.trial = nil
            return trial
        }
    }

    /// Rejects the trial with `reason` (plus the last connection error) and returns to the committed config.
    func revert(reason: String) -> (rejected: LoadedConfig, reason: String, base: LoadedConfig)? {
        state.withLock { state in
            guard let trial = state.trial else { return nil }
            let full = state.lastFailure.map { "\(reason) (last error: \($0))" } ?? reason
            do {
                try store.reject(trial, reason: full, keepStaged: state.pending != nil)
            } catch {
                log("config: cannot record the rejection of version \(trial.version): \(error)")
            }
            state.rejected = max(state.rejected, trial.version)
            state.trial = nil
            return (trial, full, state.base)
        }
    }
}

/// Runs the agent's sessions one after another, each with the config in force (docs/AGENT.md, "Configs over MQTT"):
/// the committed config, or a staged one under trial. A trial whose session connects within ``trialTimeout`` is
/// committed (the session goes on with it); otherwise it is rejected and the session restarts with the committed
/// config. A newer staged config restarts the session at once. Cancelling the calling task stops the session cleanly.
public struct ConfigRunLoop: Sendable {
    /// What a new session needs besides its config.
    public struct SessionRequest: Sendable {
        /// The config to run.
        public var config: AgentConfig
        /// The config feature to include in the session's features.
        public var feature: ConfigFeature
        /// False for the agent's first session (which may spread its first connection), true for restarts.
        public var restart: Bool
        /// The log the session must use.
        public var log: @Sendable (String) -> Void
    }

    /// The shared config state.
    public let updates: ConfigUpdates
    /// How long a trial config has to connect, seconds.
    public let trialTimeout: Double
    /// Builds a session for a request (installs its trust bundle, parses its broker…).
    public let makeSession: @Sendable (SessionRequest) throws -> AgentSession

    /// Creates the loop.
    public init(updates: ConfigUpdates, trialTimeout: Double, makeSession: @escaping @Sendable (SessionRequest) throws -> AgentSession) {
        self.updates = updates
        self.trialTimeout = trialTimeout
        self.makeSession = makeSession
    }

    /// Runs sessions until the calling task is cancelled.
    public func run() async {
        let updates = self.updates
        let log = updates.log
        var restart = false
        while !Task.isCancelled {
            let (active, isTrial) = updates.nextSessionConfig()
            let session: AgentSession
            do {
                session = try makeSession(SessionRequest(
                    config: active.config, feature: ConfigFeature(updates: updates, sessionVersion: active.version),
                    restart: restart, log: log))
            } catch {
                if isTrial {
                    revert("it cannot be used: \(error)")
                    restart = true
                    continue
                }
                log("config: cannot start a session with version \(active.version): \(error)")
                return
            }
            if isTrial { log("config: trying version \(active.version) (broker \(active.config.broker)) for up to \(Self.seconds(trialTimeout)) s") }
            restart = true
            let task = Task { await session.run() }
            let outcome = await watch(trial: isTrial)
            task.cancel()
            await task.value
            switch outcome {
            case .stopped:
                return
            case .newConfig:
                continue
            case .trialExpired:
                revert("it did not connect within \(Self.seconds(trialTimeout)) s")
            }
        }
    }

    enum Outcome {
        case stopped, newConfig, trialExpired
    }

    /// Watches the running session: commits a trial once it connected, and returns when the session must end.
    func watch(trial: Bool) async -> Outcome {
        var underTrial = trial
        let deadline = Date().addingTimeInterval(trialTimeout)
        while !Task.isCancelled {
            if updates.hasPending { return .newConfig }
            if underTrial {
                if let committed = updates.commitIfConnected() {
                    underTrial = false
                    updates.health.ok("config")
                    updates.log("config: version \(committed.version) committed (connected with it); the previous one is kept in config.previous.json")
                } else if Date() >= deadline {
                    return .trialExpired
                }
            }
            if await !AgentSession.pause(seconds: 0.1) { break }
        }
        return .stopped
    }

    func revert(_ reason: String) {
        guard let reverted = updates.revert(reason: reason) else { return }
        updates.health.degraded("config", reason: "config version \(reverted.rejected.version) reverted: \(reverted.reason)")
        updates.log("config: version \(reverted.rejected.version) reverted: \(reverted.reason); reconnecting with version \(reverted.base.version)")
    }

    static func seconds(_ value: Double) -> String { String(format: "%g", value) }
}
