import EdgeCore
import Foundation
import Synchronization
import WardenAuthority
import WardenCore
import WardenMQTT
import WardenStore

extension BrokerLayout {
    /// The telemetry ingest's client certificate chain (CN `warden-telemetry`), issued by `warden serve` at start.
    public var telemetryCertificate: String { directory + "/telemetry.crt.pem" }
    /// Its private key (mode 0600).
    public var telemetryKey: String { directory + "/telemetry.key.pem" }
}

/// Stores the devices' telemetry (``TelemetryBatch`` messages on `d/+/up/telemetry`) in the registry, under its own
/// broker identity `warden-telemetry`, which may only subscribe to and receive that filter.
///
/// Every batch is decoded strictly; the device named in the topic must be the device of every record id. A malformed
/// batch is counted (per device and in ``Counters``) and logged, and nothing of it is stored. A good batch is stored
/// in one transaction, keyed by (device, boot epoch, sequence), so a redelivered record is dropped and counted as a
/// duplicate (docs/AGENT.md, "Telemetry batches on the wire").
public struct TelemetryIngest: Sendable {
    /// The filter the ingest subscribes to.
    public static let filter = "d/+/up/telemetry"

    /// Running totals since start (all devices).
    public struct Counters: Sendable, Equatable {
        /// Batches stored.
        public var batches = 0
        /// Records stored.
        public var stored = 0
        /// Redelivered records dropped.
        public var duplicates = 0
        /// Batches refused as malformed (or from an unknown device).
        public var malformed = 0
    }

    /// The MQTT configuration of the `warden-telemetry` identity.
    public let configuration: MQTTConfiguration
    /// The registry telemetry is stored in.
    public let registry: Registry
    /// One line per noteworthy event, for the log.
    public let onEvent: @Sendable (String) -> Void
    private let totals = Totals()

    /// Creates an ingest that connects with `configuration` and stores into `registry`.
    public init(configuration: MQTTConfiguration, registry: Registry, onEvent: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.registry = registry
        self.onEvent = onEvent
    }

    /// The totals so far.
    public var counters: Counters { totals.value.withLock { $0 } }

    /// Issues a fresh `warden-telemetry` client certificate into the broker setup and returns its MQTT configuration.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issueIdentity(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        try ServiceIdentity.issue(
            commonName: DynamicSecurity.telemetryUsername, certificate: layout.telemetryCertificate, key: layout.telemetryKey,
            authority: authority, layout: layout, now: now)
    }

    /// Connects, ingests until cancelled, and reconnects after `retryDelay` whenever the broker goes away.
    public func run(retryDelay: Duration = .milliseconds(500)) async throws {
        try await ServiceLoop.reconnecting("telemetry ingest", retryDelay: retryDelay, onEvent: onEvent) { try await ingestOnce() }
    }

    /// One connection's lifetime.
    func ingestOnce() async throws {
        let client = try MQTTClient(configuration)
        try await client.connect()
        defer { Task { await client.disconnect() } }
        let messages = client.messages
        let granted = try await client.subscribe(Self.filter, qos: 1)
        guard granted < 0x80 else {
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the subscription to \(Self.filter) (reason \(granted)); regenerate the broker setup with 'warden broker config'")
        }
        onEvent("telemetry ingest subscribed to \(Self.filter)")
        for await message in messages { ingest(message) }
        throw WardenError.storage("the broker closed the telemetry ingest's connection")
    }

    /// The device id in a telemetry topic, or nil if `topic` is not one.
    public static func device(inTopic topic: String) -> String? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count == 4, levels[0] == "d", levels[2] == "up", levels[3] == "telemetry" else { return nil }
        return (try? DeviceID(String(levels[1])))?.rawValue
    }

    /// What ``ingest(_:)`` did with one message.
    public enum Outcome: Sendable, Equatable {
        /// Stored (with the redeliveries among its records dropped).
        case stored(TelemetryIngestOutcome)
        /// Refused: malformed, foreign record ids, or not an active device. Nothing stored.
        case refused(String)
    }

    /// Decodes and stores one received message.
    @discardableResult
    public func ingest(_ message: MQTTMessage, now: Date = Date()) -> Outcome {
        guard let device = Self.device(inTopic: message.topic) else { return refuse(nil, "telemetry on unexpected topic '\(message.topic)'") }
        let batch: TelemetryBatch.Decoded
        do {
            batch = try TelemetryBatch.decode(message.payload)
        } catch {
            return refuse(device, "telemetry batch from \(device) dropped: \(error)")
        }
        if let foreign = batch.records.first(where: { $0.id.device != device }) {
            return refuse(device, "telemetry batch from \(device) dropped: record \(foreign.id) names another device")
        }
        do {
            guard let outcome = try registry.recordTelemetry(
                device, records: batch.records.map { ($0.id.bootEpoch, $0.id.sequence, $0.payload) }, at: now)
            else {
                return refuse(nil, "telemetry batch from \(device) dropped: not an active device")
            }
            totals.value.withLock {
                $0.batches += 1
                $0.stored += outcome.stored
                $0.duplicates += outcome.duplicates
            }
            if outcome.duplicates > 0 {
                onEvent("telemetry from \(device): stored \(outcome.stored), dropped \(outcome.duplicates) redelivered record(s)")
            }
            return .stored(outcome)
        } catch {
            return refuse(device, "telemetry batch from \(device) dropped: \(error)")
        }
    }

    private func refuse(_ device: String?, _ why: String) -> Outcome {
        totals.value.withLock { $0.malformed += 1 }
        if let device { try? registry.recordMalformedTelemetry(device) }
        onEvent(why)
        return .refused(why)
    }
}

/// The ingest's shared counters.
private final class Totals: Sendable {
    let value = Mutex(TelemetryIngest.Counters())
}
