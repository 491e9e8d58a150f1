import Foundation
import WardenCore
import WardenPKI

#if canImport(Glibc)
import Glibc
#endif

/// A verified agent config and the exact bytes it was read from.
public struct LoadedConfig: Sendable, Equatable {
    /// The verified config.
    public let config: AgentConfig
    /// The signed document, byte for byte.
    public let bytes: [UInt8]
    /// Where it came from (a path or a topic), for messages.
    public let source: String

    /// Pairs a verified config with its bytes.
    public init(config: AgentConfig, bytes: [UInt8], source: String) {
        self.config = config
        self.bytes = bytes
        self.source = source
    }

    /// The config version.
    public var version: Int64 { config.version }
}

/// The config files of the state directory for configs delivered over MQTT (docs/AGENT.md, "Configs over MQTT"):
///
/// - `config.staged.json`: a verified config under trial (the session is trying it); `config.staged.attempts` counts
///   the agent runs that tried it (a trial interrupted by a crash is resumed once, then rejected);
/// - `config.current.json`: the last config delivered over MQTT that connected successfully (committed);
/// - `config.previous.json`: the config that ran before the last commit;
/// - `config.rejected.json`: the last config whose trial failed, with the reason; never retried (only a newer version
///   is tried);
/// - `config.version` (``AgentState/configFloorPath``): the accepted floor, raised only on commit.
///
/// Every file is written atomically (stage, fsync, rename), so a kill -9 at any point leaves either the old or the new
/// file, and ``startup(configFile:resumeTrial:note:)`` always finds a verified config to run.
public struct ConfigStore: Sendable {
    /// The state directory.
    public let state: AgentState

    /// The config files of `state`.
    public init(state: AgentState) { self.state = state }

    /// `DIR/config.staged.json`.
    public var stagedPath: String { state.directory + "/config.staged.json" }
    /// `DIR/config.staged.attempts`.
    public var attemptsPath: String { state.directory + "/config.staged.attempts" }
    /// `DIR/config.current.json`.
    public var currentPath: String { state.directory + "/config.current.json" }
    /// `DIR/config.previous.json`.
    public var previousPath: String { state.directory + "/config.previous.json" }
    /// `DIR/config.rejected.json`.
    public var rejectedPath: String { state.directory + "/config.rejected.json" }

    /// A config whose trial failed (`config.rejected.json`).
    public struct Rejection: Codable, Sendable, Equatable {
        /// Its version.
        public var version: Int64
        /// Why it was rejected.
        public var reason: String
        /// When (ISO 8601).
        public var rejectedAt: String
        /// The rejected document (text).
        public var config: String

        enum CodingKeys: String, CodingKey {
            case version, reason, config
            case rejectedAt = "rejected_at"
        }
    }

    /// Verifies `bytes` as a config for this device: the signature chain to `DIR/trust.pem`, then the device id, which
    /// must be `device` or, when nil, the CN of `DIR/device.csr` (as ``AgentState/acceptConfig(at:now:)`` checks). The
    /// version floor is the caller's business.
    /// - Throws: `.notFound` without a trust anchor or CSR, the errors of ``AgentConfig/verify(_:source:trustPEM:trustSource:now:)``,
    ///   `.policyViolation` for another device's config.
    public func verify(_ bytes: [UInt8], source: String, device: DeviceID? = nil, now: Date = Date()) async throws -> LoadedConfig {
        guard SecureFile.mode(of: state.trustPath) != nil else {
            throw WardenError.notFound("no trust anchor '\(state.trustPath)'; provision one with 'warden-agent init --trust FILE'")
        }
        let trust = try SecureFile.read(state.trustPath, what: "trust anchor")
        let config = try await AgentConfig.verify(bytes, source: source, trustPEM: trust, trustSource: state.trustPath, now: now)
        if let device {
            guard config.deviceID == device else {
                throw WardenError.policy("config '\(source)' is for device '\(config.deviceID)', not this device ('\(device)')")
            }
        } else {
            guard SecureFile.mode(of: state.csrPath) != nil else {
                throw WardenError.notFound("no device identity '\(state.csrPath)' in the state directory; run 'warden-agent init' first")
            }
            do {
                _ = try CSRValidator.validate(
                    try SecureFile.read(state.csrPath, limit: CSRValidator.maximumSize, what: "device CSR"), deviceID: config.deviceID,
                    profile: .builtInDevice, source: state.csrPath)
            } catch let error as WardenError where error.code == .policyViolation {
                throw WardenError.policy("config '\(source)' is for device '\(config.deviceID)', not this device ('\(state.csrPath)')")
            }
        }
        return LoadedConfig(config: config, bytes: bytes, source: source)
    }

    /// Reads and verifies the config file at `path` (no floor check).
    public func verifyFile(_ path: String, device: DeviceID? = nil) async throws -> LoadedConfig {
        try await verify(try SecureFile.read(path, limit: AgentConfig.maximumBytes, what: "config file"), source: path, device: device)
    }

    /// The last rejected config, or nil (also when the file is unreadable: it only ever suppresses retries).
    public func rejection() -> Rejection? {
        guard SecureFile.mode(of: rejectedPath) != nil,
            let bytes = try? SecureFile.read(rejectedPath, limit: 4 * AgentConfig.maximumBytes, what: "rejected config")
        else { return nil }
        return try? JSONDecoder().decode(Rejection.self, from: Data(bytes))
    }

    /// Stages `candidate` for a trial: `config.staged.attempts` = 1, then `config.staged.json`, both atomically.
    public func stage(_ candidate: LoadedConfig) throws {
        try SecureFile.writeAtomically(Array("1\n".utf8), to: attemptsPath, mode: 0o600)
        try SecureFile.writeAtomically(candidate.bytes, to: stagedPath, mode: 0o644)
    }

    /// Commits `trial`, which connected: `config.previous.json` ← `running` (the config it replaces), then
    /// `config.current.json` ← `trial` (atomic rename), then the floor is raised to its version. With
    /// `keepStaged`, the staged file (already holding a newer candidate) is left alone.
    public func commit(_ trial: LoadedConfig, replacing running: LoadedConfig, keepStaged: Bool = false) throws {
        try SecureFile.writeAtomically(running.bytes, to: previousPath, mode: 0o644)
        try SecureFile.writeAtomically(trial.bytes, to: currentPath, mode: 0o644)
        try raiseFloor(to: trial.version)
        if !keepStaged { removeStaged() }
    }

    /// Rejects `trial` with `reason`: `config.rejected.json` is written, then the staged files are removed (unless a
    /// newer candidate already replaced them: `keepStaged`).
    public func reject(_ trial: LoadedConfig, reason: String, now: Date = Date(), keepStaged: Bool = false) throws {
        let rejection = Rejection(
            version: trial.version, reason: reason, rejectedAt: ISO8601DateFormatter().string(from: now),
            config: String(decoding: trial.bytes, as: UTF8.self))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try SecureFile.writeAtomically(Array(try encoder.encode(rejection)), to: rejectedPath, mode: 0o644)
        } catch let error as EncodingError {
            throw WardenError.storage("cannot encode '\(rejectedPath)': \(error)")
        }
        if !keepStaged { removeStaged() }
    }

    /// Raises `config.version` to `version` if it is lower.
    func raiseFloor(to version: Int64) throws {
        if try state.configFloor() < version {
            try SecureFile.writeAtomically(Array("\(version)\n".utf8), to: state.configFloorPath, mode: 0o600)
        }
    }

    func removeStaged() {
        unlink(stagedPath)
        unlink(attemptsPath)
    }

    /// What `warden-agent run` starts with.
    public struct Startup: Sendable {
        /// The committed config to run (and to revert to).
        public var base: LoadedConfig
        /// A staged config whose trial was interrupted (kill -9, power loss) and is resumed, if any.
        public var trial: LoadedConfig?
        /// The rejection newer than `base`, if any (reported as degraded health).
        public var rejection: Rejection?
    }

    /// Chooses the config to start with, from the `--config` file and the state:
    ///
    /// 1. The file must verify (signature, device) as before. If the state holds a committed config delivered over
    ///    MQTT (`config.current.json`) whose version is at least the file's and the floor, that one runs; otherwise the
    ///    file is accepted exactly like ``AgentState/acceptConfig(at:now:)`` (floor check, floor raised).
    /// 2. A staged config left by an interrupted trial is tried again once (`resumeTrial`), if it is newer than the
    ///    base and than the last rejection; an interrupted second try rejects it. Stale staged files are removed.
    /// - Parameter note: receives what was decided, one line each, for the log (also before a refusal).
    /// - Throws: the errors of ``AgentState/acceptConfig(at:now:)`` for the file.
    public func startup(configFile: String, resumeTrial: Bool = true, note: (String) -> Void = { _ in }) async throws -> Startup {
        var current: LoadedConfig?
        if SecureFile.mode(of: currentPath) != nil {
            do {
                current = try await verifyFile(currentPath)
            } catch let error as WardenError {
                note("ignoring '\(currentPath)': \(error.message)")
            }
        }
        var base: LoadedConfig?
        if let current {
            let file = try await verifyFile(configFile)
            let floor = try state.configFloor()
            if current.version >= file.version, current.version >= floor {
                try raiseFloor(to: current.version)
                if current.version > file.version {
                    note("using '\(currentPath)' version \(current.version) (delivered over MQTT), newer than '\(configFile)' version \(file.version)")
                }
                base = current
            }
        }
        if base == nil {
            let accepted = try await state.acceptConfig(at: configFile)
            let bytes = try SecureFile.read(configFile, limit: AgentConfig.maximumBytes, what: "config file")
            base = LoadedConfig(config: accepted, bytes: bytes, source: configFile)
        }
        let running = base!
        var rejection = self.rejection()
        var trial: LoadedConfig?
        if resumeTrial, SecureFile.mode(of: stagedPath) != nil {
            do {
                let staged = try await verifyFile(stagedPath, device: running.config.deviceID)
                if staged.version > running.version, staged.version > (rejection?.version ?? 0) {
                    let attempts = (try? SecureFile.readText(attemptsPath, limit: 64, what: "attempts"))
                        .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 1
                    if attempts >= 2 {
                        let reason = "the agent stopped during its trial twice"
                        try reject(staged, reason: reason)
                        rejection = self.rejection()
                        note("config version \(staged.version) rejected: \(reason)")
                    } else {
                        try SecureFile.writeAtomically(Array("\(attempts + 1)\n".utf8), to: attemptsPath, mode: 0o600)
                        trial = staged
                        note("resuming the interrupted trial of config version \(staged.version)")
                    }
                } else {
                    removeStaged()
                }
            } catch let error as WardenError {
                note("discarding '\(stagedPath)': \(error.message)")
                removeStaged()
            }
        }
        if let found = rejection, found.version <= running.version { rejection = nil }
        return Startup(base: running, trial: trial, rejection: rejection)
    }
}
