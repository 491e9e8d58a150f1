import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT
import WardenPKI
import WardenStore

extension BrokerLayout {
    /// The config publisher's client certificate chain (CN `warden-config`), issued by `warden serve` at start.
    public var configPublisherCertificate: String { directory + "/config.crt.pem" }
    /// Its private key (mode 0600).
    public var configPublisherKey: String { directory + "/config.key.pem" }
}

/// Keeps each active device's latest signed agent config (what `warden device config` last signed and stored in
/// `HOME/agent-configs/<id>.json`) retained, QoS 1, on `d/<id>/down/config`, so a running `warden-agent` picks up a new
/// config without anyone copying files (docs/AGENT.md, "Configs over MQTT").
///
/// It polls the registry's `agent_configs` table every ``pollInterval`` (one small indexed read) and publishes only the
/// configs whose version or digest changed; on every (re)connection it republishes all of them, since a restarted
/// broker may have lost its retained store. A stored file whose SHA-256 differs from the registry's record (tampered,
/// or a write that failed after signing) is not published: the retained config stays the previous one and the event is
/// logged. Devices verify the signature themselves, so the broker is never trusted with integrity; the `warden-config`
/// role may publish on `d/+/down/config` and nothing else.
public struct ConfigPublisher: Sendable {
    /// The MQTT topic of `device`'s config.
    public static func topic(device: String) -> String { "d/\(device)/down/config" }

    /// The MQTT configuration of the `warden-config` identity.
    public let configuration: MQTTConfiguration
    /// The registry (which device has which latest version and digest).
    public let registry: Registry
    /// The authority's home (where the signed bytes are stored).
    public let home: WardenHome
    /// How often the registry is checked for changes.
    public let pollInterval: Duration
    /// One line per noteworthy event, for the log.
    public let onEvent: @Sendable (String) -> Void

    /// Creates a publisher that connects with `configuration`.
    public init(
        configuration: MQTTConfiguration, registry: Registry, home: WardenHome, pollInterval: Duration = .milliseconds(500),
        onEvent: @escaping @Sendable (String) -> Void
    ) {
        self.configuration = configuration
        self.registry = registry
        self.home = home
        self.pollInterval = pollInterval
        self.onEvent = onEvent
    }

    /// Issues a fresh `warden-config` client certificate into the broker setup (key mode 0600, written atomically)
    /// and returns the MQTT configuration that connects with it to the setup's broker.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issueIdentity(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        try ServiceIdentity.issue(
            commonName: DynamicSecurity.configUsername, certificate: layout.configPublisherCertificate,
            key: layout.configPublisherKey, authority: authority, layout: layout, now: now)
    }

    /// Connects, publishes and keeps the retained configs current until cancelled; reconnects after `retryDelay`
    /// whenever the broker goes away (and republishes everything).
    public func run(retryDelay: Duration = .seconds(1)) async throws {
        try await ServiceLoop.reconnecting("config publisher", retryDelay: retryDelay, onEvent: onEvent) { try await publishOnce() }
    }

    /// One connection's lifetime: publish what changed every ``pollInterval``.
    func publishOnce() async throws {
        let client = try MQTTClient(configuration)
        try await client.connect()
        defer { Task { await client.disconnect() } }
        // Device id → what is retained for it on this connection (or was found unpublishable, so it is not retried
        // every poll).
        var seen: [String: Registry.LatestAgentConfig] = [:]
        while !Task.isCancelled {
            guard client.isConnected else { throw WardenError.storage("the broker closed the config publisher's connection") }
            for latest in try registry.latestAgentConfigs() where seen[latest.deviceID] != latest {
                try await publish(latest, via: client)
                seen[latest.deviceID] = latest
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// Publishes one device's stored config if its digest matches the registry's record.
    func publish(_ latest: Registry.LatestAgentConfig, via client: MQTTClient) async throws {
        let device: DeviceID
        do { device = try DeviceID(latest.deviceID) } catch {
            onEvent("config publisher: skipping malformed device id '\(latest.deviceID.prefix(80))'")
            return
        }
        let path = home.agentConfigPath(device)
        let bytes: [UInt8]
        do {
            bytes = try SecureFile.read(path, limit: MQTTMessage.maximumPayloadSize, what: "stored agent config")
        } catch {
            onEvent("config publisher: config version \(latest.version) of \(device) not published: \(error)")
            return
        }
        guard Digest.hex(Digest.sha256(bytes)) == latest.sha256 else {
            onEvent("config publisher: '\(path)' does not match the registry's digest of version \(latest.version) for \(device); not published")
            return
        }
        let topic = Self.topic(device: device.rawValue)
        let code = try await client.publish(MQTTMessage(topic: topic, payload: bytes, qos: 1, retain: true))
        guard code < 0x80 else {
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the publish to \(topic) (reason \(code)); regenerate the broker setup with 'warden broker config'")
        }
        onEvent("config version \(latest.version) of \(device) published on \(topic)")
    }
}
