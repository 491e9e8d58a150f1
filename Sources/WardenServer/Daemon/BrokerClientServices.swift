import Foundation
import Logging
import ServiceLifecycle
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenStore

/// `serve`'s own MQTT clients next to the broker, each with its own identity and least-privilege role: the OTA
/// block service (`firmware/OTA-PROTOCOL.md`, `warden-ota`), the retained TUF metadata on `warden/tuf/#`
/// (`warden-tuf`), device presence from `d/+/up/presence` (`warden-presence`), device telemetry batches from
/// `d/+/up/telemetry` into the registry (`warden-telemetry`), the retained per-device rollout assignments on
/// `d/<id>/down/ota/assignment` (`warden-assign`) and each device's latest signed agent config, retained on
/// `d/<id>/down/config` (`warden-config`).
enum BrokerClientServices {
    /// The services to run next to a supervised broker. Issues fresh client certificates for its identities;
    /// each service connects (and reconnects) once the broker listens.
    static func make(authority: Authority, layout: BrokerLayout, logger: Logger) throws -> [any Service] {
        let configuration = try OTAIdentity.issue(authority: authority, layout: layout, now: Date())
        let registry = authority.registry
        let repository = FirmwareRepository(home: authority.home)
        let releases = FirmwareReleaseLookup(repository: repository)
        let log = logger
        let blocks = OTABlockService(
            configuration: configuration, imageDirectory: authority.home.path + "/firmware",
            authorize: { device, target in
                // Only active devices fetch firmware; a revoked one is also refused by the broker, this closes the gap
                // until its session is kicked.
                guard let record = try? registry.device(device) else { return .deny("device \(device) is not registered") }
                guard record.status == .active else { return .deny("device \(device) is \(record.status.rawValue)") }
                // Uptane director style: a device with a rollout assignment fetches only the target assigned to it.
                if let assignment = try? registry.currentAssignment(device: device),
                   assignment.rollout.targetSHA256 != Digest.hex(target) {
                    return .deny("device \(device) is assigned \(assignment.rollout.targetName)@\(assignment.rollout.targetVersion), not this image")
                }
                return .allow
            },
            resolve: { device, name, version in
                // A device's assigned target first, then any published target of the repository (`warden firmware list`).
                if let assignment = try? registry.currentAssignment(device: device),
                   assignment.rollout.targetName == name, assignment.rollout.targetVersion == version {
                    return Digest.bytes(fromHex: assignment.rollout.targetSHA256)
                }
                guard let release = try? releases.release(name: name, version: version) else { return nil }
                return Digest.bytes(fromHex: release.sha256)
            },
            onStatus: { device, payload in
                do {
                    let rollout = try authority.acceptSignedReport(device: device, payload: payload, now: Date())
                    log.info("rollout status report", metadata: ["device": "\(device)", "rollout": "\(rollout.id)", "rollout_state": "\(rollout.state.rawValue)"])
                } catch {
                    log.notice("status report from \(device) refused: \(error)")
                }
            },
            onEvent: { log.notice("\($0)") })
        let metadata = TUFMetadataPublisher(
            configuration: try TUFMetadataPublisher.issueIdentity(authority: authority, layout: layout, now: Date()),
            repository: repository, onEvent: { log.notice("\($0)") })
        let presence = PresenceTracker(
            configuration: try PresenceTracker.issueIdentity(authority: authority, layout: layout, now: Date()),
            registry: registry, onEvent: { log.notice("\($0)") })
        let assignments = AssignmentPublisher(
            configuration: try AssignmentIdentity.issue(authority: authority, layout: layout, now: Date()),
            registry: registry, onEvent: { log.notice("\($0)") })
        let configs = ConfigPublisher(
            configuration: try ConfigPublisher.issueIdentity(authority: authority, layout: layout, now: Date()),
            registry: registry, home: authority.home, onEvent: { log.notice("\($0)") })
        let telemetry = TelemetryIngest(
            configuration: try TelemetryIngest.issueIdentity(authority: authority, layout: layout, now: Date()),
            registry: registry, onEvent: { log.notice("\($0)") })
        return [
            ClosureService(name: "ota-blocks") { try await blocks.run() },
            ClosureService(name: "ota-assignments") { try await assignments.run() },
            ClosureService(name: "tuf-metadata") { try await metadata.run() },
            ClosureService(name: "presence") { try await presence.run() },
            ClosureService(name: "agent-configs") { try await configs.run() },
            ClosureService(name: "telemetry-ingest") { try await telemetry.run() },
        ]
    }
}
