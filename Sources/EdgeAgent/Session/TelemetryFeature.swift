import EdgeCore
import Foundation
import WardenCore
import WardenMQTT

/// Drains the store-and-forward outbox to `d/<id>/up/telemetry` while the link is up, one ``TelemetryBatch`` per
/// QoS 1 PUBLISH (up to 256 records / 64 KiB raw, LZ-compressed when that shrinks it), in queue order: the alert lane
/// first. A batch's records leave the queue only after its PUBACK succeeded, so a dropped link or a crash re-sends
/// them on the next connection; every record carries the queue's idempotent id, so the authority drops the repeats.
///
/// PUBACK reason 16 ("no matching subscribers": nobody, not even the authority's telemetry ingest, was subscribed,
/// e.g. just after a broker restart) keeps the batch and tries again after ``noSubscriberRetry``, because the broker
/// discarded it. A PUBACK ≥ 128 throws (the records stay queued), so the session marks telemetry degraded and retries
/// after its backoff.
public struct TelemetryFeature: AgentFeature {
    /// How long to wait before re-sending a batch nobody was subscribed to.
    public static let noSubscriberRetry: Duration = .milliseconds(500)
    /// How long to wait when the outbox is empty.
    public static let idlePoll: Duration = .milliseconds(100)

    /// The feature's name.
    public let name = "telemetry"
    private let outbox: TelemetryOutbox.Shared

    /// Creates the feature over a shared outbox (another task may append to it meanwhile).
    public init(outbox: TelemetryOutbox.Shared) {
        self.outbox = outbox
    }

    /// Telemetry subscribes to nothing.
    public func subscriptions(device: DeviceID) -> [String] { [] }

    /// Publishes queued batches until the link drops.
    public func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        let topic = link.deviceTopic("up/telemetry")
        var waitingForSubscriber = false
        while link.isConnected {
            try Task.checkCancellation()
            let (payload, records) = try outbox.withQueue { queue in
                try TelemetryOutbox.batch(try queue.peek(maxRecords: TelemetryBatch.maxRecords, maxBytes: TelemetryBatch.targetRawBytes))
            }
            if records.isEmpty {
                try await Task.sleep(for: Self.idlePoll)
                continue
            }
            let code = try await link.publish(MQTTMessage(topic: topic, payload: payload, qos: 1))
            if code >= 128 {
                throw WardenError.policy("telemetry refused by the broker (PUBACK \(code)); \(records.count) record(s) kept")
            }
            if code == 16 {
                if !waitingForSubscriber {
                    link.log("telemetry: nobody subscribed to \(topic) (PUBACK 16); keeping \(records.count) record(s) and retrying")
                    waitingForSubscriber = true
                }
                try await Task.sleep(for: Self.noSubscriberRetry)
                continue
            }
            waitingForSubscriber = false
            try outbox.withQueue { queue in
                try queue.acknowledge(records)
                try queue.commit()
            }
            link.health.ok(name)
            link.log("telemetry: delivered \(records.count) record(s) in \(payload.count) bytes up to \(records[records.count - 1].id)")
        }
    }
}
