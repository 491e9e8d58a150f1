import Foundation
import WardenCore
import WardenMQTT

/// Answers the authority's flight-recorder queries (`warden device timeline`, docs/AGENT.md "Flight recorder").
///
/// A query arrives on `d/<id>/down/recorder/query` as `{"request":"<id>","since":ms,"until":ms,"limit":n}`
/// (request: 1–64 of `A-Z a-z 0-9 - _`; `since`/`until` unix milliseconds, default the whole ring; `limit` default
/// 1000, at most ``FlightRecorder/maximumQueryLimit``). The answer goes to `d/<id>/up/recorder/<request>` as one or
/// more JSON parts of at most ``maximumPartBytes``:
/// `{"request":…,"part":i,"done":bool,"entries":[{"seq":…,"t":ms,"kind":…,"subsystem":…,"message":…}]}`; the last
/// part has `"done":true` and carries `"matched"` (entries in the time range) and `"truncated"` (the limit left some
/// out; the newest are returned). A malformed query with a usable request id is answered with
/// `{"request":…,"part":0,"done":true,"error":"…"}`; one without is dropped and logged.
public struct RecorderFeature: AgentFeature {
    /// The largest answer part, bytes.
    public static let maximumPartBytes = 64 * 1024
    /// The largest query accepted, bytes.
    public static let maximumQueryBytes = 4096
    /// Entries returned when the query names no limit.
    public static let defaultLimit = 1000

    /// The feature's name.
    public let name = "recorder-query"
    /// The recorder queried.
    public let recorder: FlightRecorder

    /// Creates the feature over `recorder`.
    public init(recorder: FlightRecorder) {
        self.recorder = recorder
    }

    /// The query topic of `device`.
    public static func queryTopic(device: DeviceID) -> String { "d/\(device.rawValue)/down/recorder/query" }

    /// Subscribes to the device's query topic.
    public func subscriptions(device: DeviceID) -> [String] { [Self.queryTopic(device: device)] }

    /// Answers queries until the link drops. A refused answer (PUBACK ≥ 128) throws, so the session marks the
    /// feature degraded and restarts it.
    public func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws {
        for await message in inbox {
            try Task.checkCancellation()
            let query: Query
            do {
                query = try Self.parse(message.payload)
            } catch {
                guard let request = error.request else {
                    link.log("\(name): dropped a query: \(error.reason)")
                    continue
                }
                link.log("\(name): refused query \(request): \(error.reason)")
                try await publish(link, request: request, Self.errorPart(request: request, reason: error.reason))
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

    // MARK: - Wire format

    /// A parsed query.
    struct Query: Equatable {
        var request: String
        var since: Int64
        var until: Int64
        var limit: Int
    }

    /// Why a query was refused, with its request id when it had a usable one.
    struct QueryError: Error {
        var request: String?
        var reason: String
    }

    /// Whether `text` is a usable request id (also a single MQTT topic level).
    static func isRequestID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F
        }
    }

    /// Parses a query strictly: an object with a valid `request`, optional integer `since`, `until` (since ≤ until)
    /// and `limit` (1…``FlightRecorder/maximumQueryLimit``), nothing else.
    static func parse(_ payload: [UInt8]) throws(QueryError) -> Query {
        guard payload.count <= maximumQueryBytes else { throw QueryError(request: nil, reason: "query larger than \(maximumQueryBytes) bytes") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else {
            throw QueryError(request: nil, reason: "query is not a JSON object")
        }
        guard let request = object["request"] as? String, isRequestID(request) else {
            throw QueryError(request: nil, reason: "query has no valid request id")
        }
        let unknown = Set(object.keys).subtracting(["request", "since", "until", "limit"])
        guard unknown.isEmpty else { throw QueryError(request: request, reason: "unknown field(s) \(unknown.sorted().joined(separator: ", "))") }
        struct Fields: Decodable {
            var since: Int64?
            var until: Int64?
            var limit: Int64?
        }
        let fields: Fields
        do {
            fields = try JSONDecoder().decode(Fields.self, from: Data(payload))
        } catch {
            throw QueryError(request: request, reason: "'since', 'until' and 'limit' must be integers")
        }
        let since = fields.since ?? Int64.min
        let until = fields.until ?? Int64.max
        let limit = fields.limit ?? Int64(defaultLimit)
        guard since <= until else { throw QueryError(request: request, reason: "'since' is after 'until'") }
        guard (1...Int64(FlightRecorder.maximumQueryLimit)).contains(limit) else {
            throw QueryError(request: request, reason: "'limit' must be between 1 and \(FlightRecorder.maximumQueryLimit)")
        }
        return Query(request: request, since: since, until: until, limit: Int(limit))
    }

    /// The answer parts for `result`, each at most ``maximumPartBytes``; the last one has `done`.
    static func parts(request: String, result: FlightRecorder.QueryResult) -> [[UInt8]] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Room for the envelope: request id, part number, done, matched, truncated.
        let budget = maximumPartBytes - 256
        var groups: [[UInt8]] = []
        var current: [UInt8] = []
        var currentCount = 0
        var partEntries: [[UInt8]] = []
        for entry in result.entries {
            // Encoding a struct of strings and integers cannot fail.
            let bytes = Array((try? encoder.encode(entry)) ?? Data("{}".utf8))
            if currentCount > 0, current.count + 1 + bytes.count > budget {
                partEntries.append(current)
                current = []
                currentCount = 0
            }
            if currentCount > 0 { current.append(0x2C) }
            current += bytes
            currentCount += 1
        }
        partEntries.append(current)
        for (index, entries) in partEntries.enumerated() {
            let done = index == partEntries.count - 1
            var head = #"{"request":"\#(request)","part":\#(index),"done":\#(done)"#
            if done { head += #","matched":\#(result.matched),"truncated":\#(result.truncated)"# }
            groups.append(Array((head + #","entries":["#).utf8) + entries + Array("]}".utf8))
        }
        return groups
    }

    /// The answer to a refused query.
    static func errorPart(request: String, reason: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let quoted = (try? encoder.encode(String(reason.prefix(200)))).map { String(decoding: $0, as: UTF8.self) } ?? #""refused""#
        return Array(#"{"request":"\#(request)","part":0,"done":true,"error":\#(quoted)}"#.utf8)
    }
}
