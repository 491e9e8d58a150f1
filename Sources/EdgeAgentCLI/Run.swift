import ArgumentParser
import Dispatch
import EdgeAgent
import EdgeCore
import Foundation
import WardenCore

#if canImport(Glibc)
import Glibc
#endif

extension WardenAgent {
    /// `warden-agent run --config FILE --state DIR [--check] [--replay CSV]`: verifies the signed config, then runs
    /// the MQTT session until SIGTERM or SIGINT.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the signed agent config, then run the agent.",
            discussion: """
                The config's signature is checked against DIR/trust.pem and its version against the highest version \
                accepted before (DIR/config.version); an unsigned, tampered, untrusted or older config is refused \
                (exit 1) before anything starts. With --check the agent stops after a successful verification \
                (exit 0). Otherwise it connects to the config's broker with mTLS (DIR/device.key, DIR/device.crt.pem, \
                the config's trust bundle), announces itself on d/<id>/up/presence (retained birth, Last Will \
                offline), drains DIR/queue to d/<id>/up/telemetry, reconnects with full-jitter backoff, and on \
                SIGTERM/SIGINT publishes offline, disconnects and exits 0. Newer signed configs delivered on \
                d/<id>/down/config are verified the same way, tried, and committed once the agent connected with \
                them (or reverted); a committed one (DIR/config.current.json) wins over an older --config file \
                (docs/AGENT.md, "Configs over MQTT").
                """
        )

        @Option(name: .long, help: "The signed agent config (from 'warden device config').")
        var config: String

        @Option(name: .long, help: "The agent's state directory (identity, device.crt.pem, trust.pem, config.version, queue).")
        var state: String

        @Flag(name: .long, help: "Verify the config (and raise the accepted version), then exit.")
        var check = false

        @Option(name: .long, help: "Run this recorded CSV through the config's pipeline into the outbox before connecting.")
        var replay: String?

        @Option(name: .customLong("backoff-base"), help: "Reconnect delay scale, seconds.")
        var backoffBase: Double = 1

        @Option(name: .customLong("backoff-cap"), help: "Largest reconnect delay, seconds.")
        var backoffCap: Double = 300

        @Option(name: .customLong("initial-spread"), help: "Upper bound of the random delay before the first connection, seconds.")
        var initialSpread: Double = 30

        @Option(name: .customLong("config-trial-seconds"), help: .hidden)
        var configTrialSeconds: Double = 60

        func run() async throws {
            var stderr = StandardError()
            let store = ConfigStore(state: AgentState(directory: state))
            let startup: ConfigStore.Startup
            do {
                // The --config file, or the newer config committed over MQTT in the state (docs/AGENT.md).
                startup = try await store.startup(configFile: config, resumeTrial: !check) { note in
                    _ = FileOutput.standardOutput.write("warden-agent: config: \(note)\n")
                }
            } catch let error as WardenError {
                print("warden-agent: refusing config: \(error.message)", to: &stderr)
                throw ExitCode(1)
            }
            let accepted = startup.base.config
            // Unbuffered: a supervisor (or a test) reading the log sees each line as it happens.
            _ = FileOutput.standardOutput.write("config verified: device \(accepted.deviceID) version \(accepted.version) broker \(accepted.broker)\n")
            if check { return }
            guard backoffBase >= 0, backoffCap >= 0, initialSpread >= 0, backoffBase.isFinite, backoffCap.isFinite, initialSpread.isFinite,
                configTrialSeconds > 0, configTrialSeconds.isFinite
            else {
                print("warden-agent: --backoff-base, --backoff-cap and --initial-spread must be non-negative numbers (and --config-trial-seconds positive)", to: &stderr)
                throw ExitCode(2)
            }
            let stateFiles = AgentState(directory: state)
            let (base, cap, spread) = (backoffBase, backoffCap, initialSpread)
            /// The session settings for one config: its broker and trust bundle (installed as DIR/broker-ca.pem).
            @Sendable func settings(for config: AgentConfig, restart: Bool) throws -> AgentSession.Settings {
                let (host, port) = try AgentSession.parseBroker(config.broker)
                let certFile = stateFiles.certificatePath
                guard FileManager.default.isReadableFile(atPath: certFile) else {
                    throw WardenError.badInput("'\(certFile)' (the device certificate from 'warden device enroll') is missing")
                }
                let caFile = try stateFiles.installBrokerTrust(config.trustBundle)
                return AgentSession.Settings(
                    device: config.deviceID, host: host, port: port, caFile: caFile, certFile: certFile,
                    keyFile: stateFiles.keyPath,
                    backoff: ReconnectBackoff(base: base, cap: cap, initialSpread: restart ? 0 : spread))
            }
            let outbox: DurableQueue
            do {
                _ = try settings(for: accepted, restart: false)
                outbox = try TelemetryOutbox.open(state: state, device: accepted.deviceID)
                if let replay {
                    guard let pipeline = accepted.pipeline else {
                        throw WardenError.badInput("--replay needs a pipeline, and the config has none")
                    }
                    let count = try TelemetryOutbox.enqueueReplay(pipelineJSON: pipeline, csv: replay, into: outbox)
                    _ = FileOutput.standardOutput.write("replay: queued \(count) record(s) from \(replay)\n")
                }
            } catch let error as WardenError {
                print("warden-agent: \(error.message)", to: &stderr)
                throw ExitCode(error.code == .storage ? 3 : error.code == .badInput ? 2 : 1)
            }
            let log: @Sendable (String) -> Void = { line in _ = FileOutput.standardOutput.write("warden-agent: \(line)\n") }
            let health = AgentHealth()
            let control = SessionControl()
            let telemetry = TelemetryFeature(outbox: outbox)
            // Sessions run one after another: a config delivered over MQTT restarts the session with it, and is
            // committed once it connected or reverted after --config-trial-seconds.
            let updates = ConfigUpdates(store: store, startup: startup, health: health, log: log)
            let loop = ConfigRunLoop(updates: updates, trialTimeout: configTrialSeconds) { request in
                AgentSession(
                    settings: try settings(for: request.config, restart: request.restart), features: [telemetry, request.feature],
                    health: health, control: control, log: request.log)
            }
            signal(SIGTERM, SIG_IGN)
            signal(SIGINT, SIG_IGN)
            let task = Task { await loop.run() }
            let sources = [SIGTERM, SIGINT].map { number in
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { task.cancel() }
                source.resume()
                return source
            }
            await task.value
            sources.forEach { $0.cancel() }
        }
    }
}
