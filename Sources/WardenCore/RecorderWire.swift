import Foundation

/// The flight-recorder query protocol between `warden device timeline` (the `warden-recorder` identity) and the
/// agent's `RecorderFeature` (docs/AGENT.md, "Flight recorder"). Both sides use this one definition.
///
/// A query goes to `d/<id>/down/recorder/query` as `{"request":"<id>","since":ms,"until":ms,"limit":n}` (request: 1–64
/// of `A-Z a-z 0-9 - _`; `since`/`until` unix milliseconds, default the whole ring; `limit` default 1000). The answer
/// goes to `d/<id>/up/recorder/<request>` as one or more JSON parts of at most ``maximumPartBytes``:
/// `{"request":…,"part":i,"done":bool,"entries":[{"seq":…,"t":ms,"kind":…,"subsystem":…,"message":…}]}`; the last
/// part has `"done":true` and carries `"matched"` (entries in the time range) and `"truncated"` (the limit left some
/// out; the newest are returned). A refused query with a usable request id is answered with
/// `{"request":…,"part":0,"done":true,"error":"…"}`.
public enum RecorderWire {
    /// The largest answer part, bytes.
    public static let maximumPartBytes = 64 * 1024
    /// The largest query accepted, bytes.
    public static let maximumQueryBytes = 4096
    /// Entries returned when the query names no limit.
    public static let defaultLimit = 1000
    /// The largest limit a query may ask for.
    public static let maximumLimit = 10_000

    /// The query topic of `device`.
    public static func queryTopic(device: DeviceID) -> String { "d/\(device.rawValue)/down/recorder/query" }

    /// The topic the answer to `request` arrives on.
    public static func answerTopic(device: DeviceID, request: String) -> String { "d/\(device.rawValue)/up/recorder/\(request)" }

    /// Whether `text` is a usable request id (also a single MQTT topic level).
    public static func isRequestID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F
        }
    }

    /// A fresh request id: 16 random bytes, hex.
    public static func newRequestID() -> String {
        var rng = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        for _ in 0..<16 {
            let byte = UInt8.random(in: 0...255, using: &rng)
            bytes.append(hex[Int(byte >> 4)])
            bytes.append(hex[Int(byte & 0xF)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One recorder entry on the wire.
    public struct Entry: Codable, Sendable, Equatable {
        /// The device's sequence number.
        public var seq: UInt64
        /// Unix milliseconds (the device's clock).
        public var t: Int64
        /// `log`, `connect`, `disconnect`, `decision`, `health`, `fault`.
        public var kind: String
        /// The subsystem.
        public var subsystem: String
        /// The message.
        public var message: String

        /// An entry.
        public init(seq: UInt64, t: Int64, kind: String, subsystem: String, message: String) {
            self.seq = seq
            self.t = t
            self.kind = kind
            self.subsystem = subsystem
            self.message = message
        }
    }

    /// A query.
    public struct Query: Sendable, Equatable {
        /// The request id, echoed in the answer's topic and parts.
        public var request: String
        /// Unix milliseconds, inclusive.
        public var since: Int64
        /// Unix milliseconds, inclusive.
        public var until: Int64
        /// The most entries wanted (the newest are kept).
        public var limit: Int

        /// A query.
        public init(request: String, since: Int64 = .min, until: Int64 = .max, limit: Int = RecorderWire.defaultLimit) {
            self.request = request
            self.since = since
            self.until = until
            self.limit = limit
        }

        /// The query's JSON.
        public func encoded() -> [UInt8] {
            Array(#"{"request":"\#(request)","since":\#(since),"until":\#(until),"limit":\#(limit)}"#.utf8)
        }

        /// Parses a query strictly: an object with a valid `request`, optional integer `since`, `until`
        /// (since ≤ until) and `limit` (1…``RecorderWire/maximumLimit``), nothing else, at most
        /// ``RecorderWire/maximumQueryBytes``.
        public static func parse(_ payload: [UInt8]) throws(QueryError) -> Query {
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
            guard (1...Int64(maximumLimit)).contains(limit) else {
                throw QueryError(request: request, reason: "'limit' must be between 1 and \(maximumLimit)")
            }
            return Query(request: request, since: since, until: until, limit: Int(limit))
        }
    }

    /// Why a query was refused, with its request id when it had a usable one.
    public struct QueryError: Error, Sendable {
        /// The query's request id, when it had a usable one (then the refusal is answered).
        public var request: String?
        /// Why.
        public var reason: String
    }

    /// One part of an answer, as received.
    public struct Part: Decodable, Sendable {
        /// The request id.
        public var request: String
        /// 0-based part number.
        public var part: Int
        /// Whether this is the last part.
        public var done: Bool
        /// The part's entries.
        public var entries: [Entry]?
        /// Last part: entries in the time range.
        public var matched: Int?
        /// Last part: whether the limit left some out.
        public var truncated: Bool?
        /// The device's refusal of the query.
        public var error: String?
    }

    /// The answer parts for `entries`, each at most ``maximumPartBytes``; the last one has `done`, `matched` and
    /// `truncated`.
    public static func parts(request: String, entries: [Entry], matched: Int, truncated: Bool) -> [[UInt8]] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Room for the envelope: request id, part number, done, matched, truncated.
        let budget = maximumPartBytes - 256
        var current: [UInt8] = []
        var currentCount = 0
        var partEntries: [[UInt8]] = []
        for entry in entries {
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
        var parts: [[UInt8]] = []
        for (index, entries) in partEntries.enumerated() {
            let done = index == partEntries.count - 1
            var head = #"{"request":"\#(request)","part":\#(index),"done":\#(done)"#
            if done { head += #","matched":\#(matched),"truncated":\#(truncated)"# }
            parts.append(Array((head + #","entries":["#).utf8) + entries + Array("]}".utf8))
        }
        return parts
    }

    /// The answer to a refused query.
    public static func errorPart(request: String, reason: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let quoted = (try? encoder.encode(String(reason.prefix(200)))).map { String(decoding: $0, as: UTF8.self) } ?? #""refused""#
        return Array(#"{"request":"\#(request)","part":0,"done":true,"error":\#(quoted)}"#.utf8)
    }
}
