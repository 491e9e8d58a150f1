import EdgeCore
import Foundation
import WardenCore
import WardenMQTT

/// Drains the store-and-forward outbox to `d/<id>/up/telemetry` while the link is up (QoS 1). A record leaves the
/// queue only after its PUBACK succeeded, so a dropped link or a crash re-sends it on the next connection; the
/// payload carries the queue's idempotent id (``TelemetryOutbox/payload(_:)``), so the receiver drops the repeats.
public struct TelemetryFeature: AgentFeature {
    /// Records published per pass.
    public static let batchRecords = 64

    /// The feature's name.
    public let name = "telemetry"
    private let outbox: OutboxHandle

    /// Creates the feature over `outbox`, which from now on only this feature touches.
    public init(outbox: DurableQueue) {
        self.outbox = OutboxHandle(outbox)
    }

    /// Telemetry subscribes to nothing.
    public func subscriptions(device: DeviceID) -> [String] { [] }

    /// Publishes queued records until the link drops. A PUBACK ≥ 128 throws (the records stay queued), so the
    /// session marks telemetry degraded and retries after its backoff.
    public func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        let topic = link.deviceTopic("up/telemetry")
        let queue = outbox.queue
        while link.isConnected {
            try Task.checkCancellation()
            let records = try queue.peek(maxRecords: Self.batchRecords)
            var delivered: [StoredRecord] = []
            var refusal: Int?
            for record in records {
                let code = try await link.publish(MQTTMessage(topic: topic, payload: TelemetryOutbox.payload(record), qos: 1))
                guard code < 128 else {
                    refusal = code
                    break
                }
                delivered.append(record)
            }
            if !delivered.isEmpty {
                try queue.acknowledge(delivered)
                try queue.commit()
                link.health.ok(name)
                link.log("telemetry: delivered \(delivered.count) record(s) up to \(delivered[delivered.count - 1].id)")
            }
            if let refusal {
                throw WardenError.policy("telemetry refused by the broker (PUBACK \(refusal)); \(records.count - delivered.count) record(s) kept")
            }
            if records.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
    }
}

/// Hands the outbox to the one feature that uses it.
final class OutboxHandle: @unchecked Sendable {
    // @unchecked: the queue is only touched by the telemetry feature's task (one at a time, by the supervisor).
    let queue: DurableQueue
    init(_ queue: DurableQueue) { self.queue = queue }
}
