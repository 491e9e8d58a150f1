import ArgumentParser
import Foundation
import WardenAuthority
import WardenCore
import WardenPKI

extension WardenRoot.Device {
    /// `warden device config ID --broker mqtts://H:P --https-url URL [--pipeline FILE] [--hardware ID]
    /// [--health-check "/abs/path [args]"] [--health-timeout SECONDS] --out FILE`
    struct Config: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "config",
            abstract: "Write a signed agent config for a device (verified by warden-agent run before anything starts).",
            discussion: """
                The config holds the broker URL, the HTTPS URL, the trust bundle, the TUF root (when the firmware \
                repository exists), the pipeline and a config version that goes up by one per device and per call. \
                It is signed with the issuing CA key; the agent checks it against the trust anchor it was provisioned \
                with (warden-agent init --trust FILE) and refuses an unsigned, tampered or older config. The signed \
                bytes are also stored as HOME/agent-configs/ID.json: a running 'warden serve --broker' publishes every \
                device's latest config, retained, on d/ID/down/config within a second, and running agents apply it \
                (tried, then committed or reverted; docs/AGENT.md, "Configs over MQTT").
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Device id (an enrolled, active device).") var id: String
        @Option(help: "Broker URL, mqtts://HOST:PORT.") var broker: String
        @Option(help: "The authority's HTTPS base URL.") var httpsUrl: String
        @Option(help: "Edge-core pipeline file (JSON) to include.") var pipeline: String?
        @Option(help: "The device's hardware id; OTA targets whose signed hardware list lacks it are refused.") var hardware: String?
        @Option(help: "Post-install health check: \"/abs/path [args]\" (split on spaces, no shell); exit 0 = healthy.") var healthCheck: String?
        @Option(help: "Health check timeout, seconds (1-3600, default 30).") var healthTimeout: Int?
        @Option(help: "Write the signed config here (mode 0644, written atomically).") var out: String

        func execute() async throws {
            let deviceID = try DeviceID(id)
            let pipelineText = try pipeline.map { try SecureFile.readText($0, what: "pipeline file") }
            let passphrase = try global.passphrase()
            let authority = try Authority.open(home: global.wardenHome, passphrase: passphrase, actor: global.actor)
            // The version is recorded when signing; if writing --out then fails, that version is simply skipped
            // (versions only need to go up).
            let issued = try authority.issueAgentConfig(
                AgentConfigRequest(
                    deviceID: deviceID, broker: broker, httpsURL: httpsUrl, pipeline: pipelineText, hardware: hardware,
                    healthCheck: healthCheck.map { $0.split(separator: " ").map(String.init) }, healthTimeout: healthTimeout),
                passphrase: passphrase, now: Date())
            try SecureFile.writeAtomically(issued.bytes, to: out)
            Console.error("wrote config version \(issued.version) for \(deviceID) to \(out)")
        }
    }
}
