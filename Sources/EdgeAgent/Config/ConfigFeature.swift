import Foundation
import WardenCore
import WardenMQTT

/// Receives signed agent configs on `d/<id>/down/config` (retained by the authority's config publisher) and hands
/// the acceptable ones to ``ConfigUpdates`` for a trial (docs/AGENT.md, "Configs over MQTT").
///
/// A message is checked like a `--config` file: size limit, signature chain to `DIR/trust.pem`, device id; then the
/// version: equal to the running config's → ignored silently (the retained copy is replayed on every connection);
/// lower → refused (logged, health `config` degraded); already staged or rejected → ignored; higher → staged
/// (`config.staged.json`) and the run loop restarts the session with it.
///
/// One instance runs per session; its start tells ``ConfigUpdates`` that the session's config connected.
public struct ConfigFeature: AgentFeature {
    /// The feature's (and health entry's) name.
    public let name = "config"
    /// The coordinator shared with the run loop.
    public let updates: ConfigUpdates
    /// The version of the config the session runs with.
    public let sessionVersion: Int64

    /// Creates the feature for a session running config version `sessionVersion`.
    public init(updates: ConfigUpdates, sessionVersion: Int64) {
        self.updates = updates
        self.sessionVersion = sessionVersion
    }

    /// The device's config topic.
    public static func topic(device: DeviceID) -> String { "d/\(device.rawValue)/down/config" }

    /// `d/<id>/down/config`.
    public func subscriptions(device: DeviceID) -> [String] { [Self.topic(device: device)] }

    /// Reports the connection, then handles configs until the link drops.
    public func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        updates.connected(version: sessionVersion)
        for await message in inbox {
            await handle(message, link: link)
        }
        // The inbox ends when the connection is torn down, and the session then cancels this task. Wait for that and
        // end by cancellation: returning normally would make the session record the feature healthy, and a revert's
        // degraded reason must survive reconnections.
        while true { try await Task.sleep(for: .milliseconds(100)) }
    }

    /// Checks one received message and offers an acceptable config to the run loop.
    func handle(_ message: MQTTMessage, link: AgentLink) async {
        guard !message.payload.isEmpty else { return }  // A cleared retained topic.
        let source = message.topic
        guard message.payload.count <= AgentConfig.maximumBytes else {
            refuse("config on \(source) is larger than \(AgentConfig.maximumBytes / 1024) KiB", link: link)
            return
        }
        let candidate: LoadedConfig
        do {
            candidate = try await updates.store.verify(message.payload, source: source, device: link.device)
        } catch let error as WardenError {
            refuse(error.message, link: link)
            return
        } catch {
            refuse("config on \(source): \(error)", link: link)
            return
        }
        do {
            switch try updates.offer(candidate) {
            case .running, .alreadyKnown:
                return
            case .older(let accepted):
                refuse("config on \(source) has version \(candidate.version), older than the accepted version \(accepted)", link: link)
            case .staged:
                link.log("config: version \(candidate.version) received on \(source) and staged; restarting the session to try it")
            }
        } catch {
            refuse("cannot stage config version \(candidate.version): \(error)", link: link)
        }
    }

    func refuse(_ reason: String, link: AgentLink) {
        link.log("config: refused: \(reason)")
        link.health.degraded(name, reason: "refused: \(reason)")
    }
}
