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
                SIGTERM/SIGINT publishes offline, disconnects and exits 0.
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

        func run() async throws {
            var stderr = StandardError()
            let accepted: AgentConfig
            do {
                accepted = try await AgentState(directory: state).acceptConfig(at: config)
            } catch let error as WardenError {
                print("warden-agent: refusing config: \(error.message)", to: &stderr)
                throw ExitCode(1)
            }
            // Unbuffered: a supervisor (or a test) reading the log sees each line as it happens.
            _ = FileOutput.standardOutput.write("config verified: device \(accepted.deviceID) version \(accepted.version) broker \(accepted.broker)\n")
            if check { return }
            guard backoffBase >= 0, backoffCap >= 0, initialSpread >= 0, backoffBase.isFinite, backoffCap.isFinite, initialSpread.isFinite else {
                print("warden-agent: --backoff-base, --backoff-cap and --initial-spread must be non-negative numbers", to: &stderr)
                throw ExitCode(2)
            }
            let settings: AgentSession.Settings
            let outbox: DurableQueue
            var simulator: TelemetrySimulator?
            do {
                let (host, port) = try AgentSession.parseBroker(accepted.broker)
                let stateFiles = AgentState(directory: state)
                let certFile = stateFiles.certificatePath
                guard FileManager.default.isReadableFile(atPath: certFile) else {
                    throw WardenError.badInput("'\(certFile)' (the device certificate from 'warden device enroll') is missing")
                }
                let caFile = try stateFiles.installBrokerTrust(accepted.trustBundle)
                settings = AgentSession.Settings(
                    device: accepted.deviceID, host: host, port: port, caFile: caFile, certFile: certFile,
                    keyFile: stateFiles.keyPath,
                    backoff: ReconnectBackoff(base: backoffBase, cap: backoffCap, initialSpread: initialSpread))
                outbox = try TelemetryOutbox.open(state: state, device: accepted.deviceID)
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
            let shared = TelemetryOutbox.Shared(outbox)
            let log: @Sendable (String) -> Void = { line in _ = FileOutput.standardOutput.write("warden-agent: \(line)\n") }
            let session = AgentSession(settings: settings, features: [TelemetryFeature(outbox: shared)], log: log)
            signal(SIGTERM, SIG_IGN)
            signal(SIGINT, SIG_IGN)
            let task = Task { await session.run() }
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
