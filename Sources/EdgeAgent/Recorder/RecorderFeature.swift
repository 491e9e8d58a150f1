import Foundation
import WardenCore
import WardenMQTT

/// Answers the authority's flight-recorder queries (`warden device timeline`, docs/AGENT.md "Flight recorder").
///
/// The protocol (query and answer parts, limits) is ``RecorderWire``, shared with the authority's side. A query with
/// a usable request id that is otherwise malformed is answered with an error part; one without is dropped and logged.
public struct RecorderFeature: AgentFeature {
    /// The feature's name.
    public let name = "recorder-query"
    /// The recorder queried.
    public let recorder: FlightRecorder

    /// Creates the feature over `recorder`.
    public init(recorder: FlightRecorder) {
        self.recorder = recorder
    }

    /// Subscribes to the device's query topic.
    public func subscriptions(device: DeviceID) -> [String] { [RecorderWire.queryTopic(device: device)] }

    /// Answers queries until the link drops. A refused answer (PUBACK ≥ 128) throws, so the session marks the
    /// feature degraded and restarts it.
    public func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        for await message in inbox {
            try Task.checkCancellation()
            let query: RecorderWire.Query
            do {
                query = try RecorderWire.Query.parse(message.payload)
            } catch {
                guard let request = error.request else {
                    link.log("\(name): dropped a query: \(error.reason)")
                    continue
                }
                link.log("\(name): refused query \(request): \(error.reason)")
                try await publish(link, request: request, RecorderWire.errorPart(request: request, reason: error.reason))
                continue
            }
            let result = await recorder.query(since: query.since, until: query.until, limit: query.limit)
            let parts = Self.parts(request: query.request, result: result)
            for part in parts { try await publish(link, request: query.request, part) }
            link.log("\(name): answered query \(query.request) with \(result.entries.count) of \(result.matched) entries in \(parts.count) part(s)")
        }
    }

    private func publish(_ link: AgentLink, request: String, _ payload: [UInt8]) async throws {
        let topic = link.deviceTopic("up/recorder/\(request)")
        let code = try await link.publish(MQTTMessage(topic: topic, payload: payload, qos: 1))
        guard code < 128 else { throw WardenError.policy("the broker refused the recorder answer on \(topic) (PUBACK \(code))") }
    }

    /// The answer parts for `result` (``RecorderWire/parts(request:entries:matched:truncated:)``).
    static func parts(request: String, result: FlightRecorder.QueryResult) -> [[UInt8]] {
        RecorderWire.parts(
            request: request,
            entries: result.entries.map {
                RecorderWire.Entry(seq: $0.seq, t: $0.time, kind: $0.kind.name, subsystem: $0.subsystem, message: $0.message)
            },
            matched: result.matched, truncated: result.truncated)
    }
}
