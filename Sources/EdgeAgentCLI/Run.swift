import ArgumentParser
import EdgeAgent
import Foundation
import WardenCore

extension WardenAgent {
    /// `warden-agent run --config FILE --state DIR --check`: verifies the signed config before anything else.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the signed agent config, then run the agent.",
            discussion: """
                The config's signature is checked against DIR/trust.pem and its version against the highest version \
                accepted before (DIR/config.version); an unsigned, tampered, untrusted or older config is refused \
                (exit 1) before anything starts. With --check the agent stops after a successful verification \
                (exit 0). This build does not run the MQTT session yet: without --check, run exits 1 after verifying.
                """
        )

        @Option(name: .long, help: "The signed agent config (from 'warden device config').")
        var config: String

        @Option(name: .long, help: "The agent's state directory (identity, trust.pem, config.version).")
        var state: String

        @Flag(name: .long, help: "Verify the config (and raise the accepted version), then exit.")
        var check = false

        func run() async throws {
            let accepted: AgentConfig
            do {
                accepted = try await AgentState(directory: state).acceptConfig(at: config)
            } catch let error as WardenError {
                var stderr = StandardError()
                print("warden-agent: refusing config: \(error.message)", to: &stderr)
                throw ExitCode(1)
            }
            print("config verified: device \(accepted.deviceID) version \(accepted.version) broker \(accepted.broker)")
            guard check else {
                var stderr = StandardError()
                print("warden-agent: the MQTT session is not implemented in this build; use --check", to: &stderr)
                throw ExitCode(1)
            }
        }
    }
}
