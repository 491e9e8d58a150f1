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

        @Option(name: .long, help: ArgumentHelp("Feed a synthetic sensor (noisy sine with spikes) through the config's pipeline into the outbox at this many samples per second, continuously.", valueName: "HZ"))
        var simulate: Double?

        @Option(name: .customLong("backoff-base"), help: "Reconnect delay scale, seconds.")
        var backoffBase: Double = 1

        @Option(name: .customLong("backoff-cap"), help: "Largest reconnect delay, seconds.")
        var backoffCap: Double = 300

        @Option(name: .customLong("initial-spread"), help: "Upper bound of the random delay before the first connection, seconds.")
        var initialSpread: Double = 30

        @Flag(name: .customLong("no-renewal"), help: "Do not renew the device certificate over EST in the background.")
        var noRenewal = false

        @Option(name: .customLong("renewal-check"), help: "How often the certificate renewal due check runs, seconds.")
        var renewalCheck: Double = 300

        @Option(name: .customLong("trim-interval"), help: ArgumentHelp("Every this many seconds (the first time after at most 20), hand start-up code pages and freed heap back to the kernel (docs/AGENT.md, \"Memory\"); 0 never.", valueName: "SECONDS"))
        var trimInterval: Double = 60

        @Option(name: .customLong("config-trial-seconds"), help: .hidden)
        var configTrialSeconds: Double = 60

        func run() async throws {
            WorkingSet.limitMallocArenas(2)
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
            guard renewalCheck >= 1, renewalCheck.isFinite else {
                print("warden-agent: --renewal-check must be at least 1 second", to: &stderr)
                throw ExitCode(2)
            }
            guard trimInterval == 0 || (trimInterval >= 1 && trimInterval.isFinite) else {
                print("warden-agent: --trim-interval must be 0 (never) or at least 1 second", to: &stderr)
                throw ExitCode(2)
            }
            // The flight recorder keeps every log line, connection and health change (docs/AGENT.md); it never
            // fails the agent: a disk problem only degrades its health entry.
            let health = AgentHealth()
            let recorder = FlightRecorder(directory: FlightRecorder.directory(state: state), health: health)
            defer { recorder.close() }
            recorder.watch(health)
            recorder.record(.decision, subsystem: "config", "accepted config version \(accepted.version) for \(accepted.deviceID)")
            let log: @Sendable (String) -> Void = { line in
                _ = FileOutput.standardOutput.write("warden-agent: \(line)\n")
                recorder.recordSessionLine(line)
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
            let ota: OTAFeature
            var renewal: IdentityRenewal?
            var simulator: TelemetrySimulator?
            do {
                let caFile = try settings(for: accepted, restart: false).caFile
                outbox = try TelemetryOutbox.open(state: state, device: accepted.deviceID)
                ota = try OTAFeature(
                    settings: OTAFeature.Settings(config: accepted, stateDirectory: state, keyPath: stateFiles.keyPath),
                    log: log)
                // Renewal over EST at the config's https_url, trusting the config's (verified) trust bundle only.
                if !noRenewal {
                    do {
                        renewal = IdentityRenewal(directory: state, est: try ESTClient(estURL: accepted.httpsURL, trustFile: caFile))
                    } catch let error as WardenError {
                        log("certificate renewal disabled: \(error.message)")
                    }
                }
                if let replay {
                    guard let pipeline = accepted.pipeline else {
                        throw WardenError.badInput("--replay needs a pipeline, and the config has none")
                    }
                    let count = try TelemetryOutbox.enqueueReplay(pipelineJSON: pipeline, csv: replay, into: outbox)
                    _ = FileOutput.standardOutput.write("replay: queued \(count) record(s) from \(replay)\n")
                }
                if let simulate {
                    guard let pipeline = accepted.pipeline else {
                        throw WardenError.badInput("--simulate needs a pipeline, and the config has none")
                    }
                    simulator = try TelemetrySimulator(pipelineJSON: pipeline, hz: simulate)
                }
            } catch let error as WardenError {
                print("warden-agent: \(error.message)", to: &stderr)
                throw ExitCode(error.code == .storage ? 3 : error.code == .badInput ? 2 : 1)
            }
            // A pending A/B install finishes (health check → commit or rollback) before anything connects.
            await ota.recoverAtStart()
            // A promotion cut short by a crash is finished before the session picks its identity.
            if renewal?.completeInterruptedPromotion() == true {
                log("finished an interrupted certificate promotion")
            }
            let control = SessionControl()
            let shared = TelemetryOutbox.Shared(outbox)
            let resident: [any AgentFeature] = [TelemetryFeature(outbox: shared), ota, RecorderFeature(recorder: recorder)]
            // Sessions run one after another: a config delivered over MQTT restarts the session with it, and is
            // committed once it connected or reverted after --config-trial-seconds.
            let updates = ConfigUpdates(store: store, startup: startup, health: health, log: log)
            control.observeConnectionFailures(updates.connectionFailed)
            let loop = ConfigRunLoop(updates: updates, trialTimeout: configTrialSeconds) { request in
                AgentSession(
                    settings: try settings(for: request.config, restart: request.restart), features: resident + [request.feature],
                    health: health, control: control, log: request.log)
            }
            signal(SIGTERM, SIG_IGN)
            signal(SIGINT, SIG_IGN)
            var scheduler = renewal.map { RenewalScheduler(renewal: $0, control: control, log: log) }
            scheduler?.checkInterval = .milliseconds(Int64(renewalCheck * 1000))
            let renewer = scheduler
            let trim = trimInterval
            let task = Task {
                await withTaskGroup(of: Void.self) { group in
                    if let renewer { group.addTask { await renewer.run() } }
                    if trim > 0 {
                        group.addTask {
                            await WorkingSet.run(first: .seconds(min(20, trim)), interval: .seconds(trim), report: log)
                        }
                    }
                    await loop.run()
                    // The agent is stopping: stop the renewal and trim loops with it.
                    group.cancelAll()
                }
            }
            let feeder = simulator.map { simulator in
                Task {
                    do { try await simulator.run(into: shared, report: log) } catch { log("simulate: stopped: \(error)") }
                }
            }
            let sources = [SIGTERM, SIGINT].map { number in
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    feeder?.cancel()
                    task.cancel()
                }
                source.resume()
                return source
            }
            await task.value
            await feeder?.value
            sources.forEach { $0.cancel() }
        }
    }
}
