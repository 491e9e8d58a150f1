import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT
import WardenStore

extension BrokerLayout {
    /// The presence tracker's client certificate chain (CN `warden-presence`), issued by `warden serve` at start.
    public var presenceCertificate: String { directory + "/presence.crt.pem" }
    /// Its private key (mode 0600).
    public var presenceKey: String { directory + "/presence.key.pem" }
}

/// Keeps the registry's device presence (`connected`, `last_seen`; `warden device show`) from the devices' retained
/// birth and Last Will messages on `d/+/up/presence` (``PresenceMessage``). Its broker identity may read only those
/// topics. Duplicates and retained replays are harmless (recording is idempotent); a Last Will of a superseded session
/// is ignored; malformed messages are counted and dropped.
public struct PresenceTracker: Sendable {
    /// The MQTT configuration of the `warden-presence` identity.
    public let configuration: MQTTConfiguration
    /// The registry presence is recorded in.
    public let registry: Registry
    /// One line per noteworthy event, for the log.
    public let onEvent: @Sendable (String) -> Void

    /// Creates a tracker that connects with `configuration` and records into `registry`.
    public init(configuration: MQTTConfiguration, registry: Registry, onEvent: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.registry = registry
        self.onEvent = onEvent
    }

    /// Issues a fresh `warden-presence` client certificate into the broker setup and returns its MQTT configuration.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issueIdentity(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        try ServiceIdentity.issue(
            commonName: DynamicSecurity.presenceUsername, certificate: layout.presenceCertificate, key: layout.presenceKey,
            authority: authority, layout: layout, now: now)
    }

    /// Connects, tracks until cancelled, and reconnects after `retryDelay` whenever the broker goes away.
    public func run(retryDelay: Duration = .seconds(1)) async throws {
        try await ServiceLoop.reconnecting("presence tracker", retryDelay: retryDelay, onEvent: onEvent) { try await trackOnce() }
    }

    /// One connection's lifetime. Everything is first marked disconnected (a restarted broker has no sessions); the
    /// retained births that the subscription replays mark the live devices connected again within moments.
    func trackOnce() async throws {
        let client = try MQTTClient(configuration)
        try await client.connect()
        defer { Task { await client.disconnect() } }
        let messages = client.messages
        try registry.markAllDisconnected(at: Date())
        let granted = try await client.subscribe(PresenceMessage.filter, qos: 1)
        guard granted < 0x80 else {
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the subscription to \(PresenceMessage.filter) (reason \(granted)); regenerate the broker setup with 'warden broker config'")
        }
        for await message in messages { record(message) }
        throw WardenError.storage("the broker closed the presence tracker's connection")
    }

    /// Records one received message (empty retained payloads, which clear a topic, are ignored).
    func record(_ message: MQTTMessage) {
        guard !message.payload.isEmpty, let device = PresenceMessage.device(inTopic: message.topic) else { return }
        do {
            let presence = try PresenceMessage.parse(message.payload)
            try registry.recordPresence(device, connected: presence.state == .online, session: presence.session, at: Date())
        } catch {
            onEvent("presence of \(device) dropped: \(error)")
        }
    }
}
