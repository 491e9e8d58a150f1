import Foundation
import WardenCore
import WardenMQTT
import WardenUpdate

/// The agent's OTA client (`docs/AGENT.md`, "OTA client"; `firmware/OTA-PROTOCOL.md` §8–§11).
///
/// Subscribes to its retained assignment (`d/<id>/down/ota/assignment`), its block topic (`d/<id>/down/ota/block`)
/// and the retained TUF metadata (`warden/tuf/+`). For an assignment it verifies the target through TUF (retained
/// metadata, HTTPS as fallback), refuses a target for other hardware or below the installed floor, downloads the
/// image block by block (each block verified alone; the bitmap persisted so a restart resumes), checks the whole
/// image, installs it in the inactive A/B slot, runs the configured health check and commits or rolls back. Every
/// step is persisted in `STATE/ota/job.json`; signed status reports go to `d/<id>/up/ota/status` and are re-sent
/// until the broker acknowledges them.
public struct OTAFeature: AgentFeature {
    /// What the feature needs from the verified config and the state directory.
    public struct Settings: Sendable {
        /// The device.
        public var device: DeviceID
        /// `--state DIR`.
        public var stateDirectory: String
        /// The device's private key (signs status reports).
        public var keyPath: String
        /// The signed config's hardware id (nil: every target is refused).
        public var hardware: String?
        /// The signed config's health check (nil: an install is healthy once written).
        public var healthCheck: AgentConfig.ConfiguredHealthCheck?
        /// The trusted TUF root from the config (provisions `ota/tuf/root.json` the first time).
        public var tufRoot: [UInt8]?
        /// The authority's HTTPS base URL (metadata fallback: `<url>/tuf/metadata`).
        public var httpsURL: String?
        /// The CAs trusted for that HTTPS fallback: the verified config's trust bundle as installed in the state
        /// directory (nil: the system store).
        public var httpsCAFile: String?

        /// Settings from a verified config.
        public init(config: AgentConfig, stateDirectory: String, keyPath: String) {
            device = config.deviceID
            self.stateDirectory = stateDirectory
            self.keyPath = keyPath
            hardware = config.hardware
            healthCheck = config.healthCheck
            tufRoot = config.tufRoot
            httpsURL = config.httpsURL
            let bundle = AgentState(directory: stateDirectory).brokerTrustPath
            httpsCAFile = FileManager.default.isReadableFile(atPath: bundle) ? bundle : nil
        }
    }

    /// The feature's name.
    public let name = "ota"
    let engine: OTAEngine

    /// Creates the feature; loads `STATE/ota/job.json`.
    /// - Throws: ``WardenError`` `.storage` if the job file is corrupted.
    public init(settings: Settings, log: @escaping @Sendable (String) -> Void) throws {
        engine = try OTAEngine(settings: settings, log: log)
    }

    /// Call once at agent start, before connecting: recovers the slot store (``SlotStore/recover()``) and finishes
    /// an install that was waiting for its health check (commit or rollback), offline if need be.
    public func recoverAtStart() async {
        await engine.recoverAtStart()
    }

    /// The assignment, the block topic and the retained TUF metadata.
    public func subscriptions(device: DeviceID) -> [String] {
        ["d/\(device.rawValue)/down/ota/assignment", OTATopics.blocks(device: device.rawValue), OTAMetadataFetcher.filter]
    }

    /// Drives the job while the link is up.
    public func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        try await engine.run(link: link, inbox: inbox)
    }
}
