import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT

extension BrokerLayout {
    /// The flight-recorder query identity's certificate chain (CN `warden-recorder`), issued by `warden broker config`
    /// (or by the first `warden device timeline` of an older setup).
    public var recorderCertificate: String { directory + "/recorder.crt.pem" }
    /// Its private key (mode 0600).
    public var recorderKey: String { directory + "/recorder.key.pem" }
    /// The lock that makes `warden device timeline` queries take turns with the one recorder identity.
    public var recorderLock: String { directory + "/recorder.lock" }
}

/// Asks one device for its flight-recorder entries over MQTT (`warden device timeline`), as the `warden-recorder`
/// identity, whose role may only publish `d/+/down/recorder/query` and read `d/+/up/recorder/#`.
///
/// The wire format is ``RecorderWire`` (shared with the agent's `RecorderFeature`): one query, answered on
/// `d/<id>/up/recorder/<request>` by parts of at most 64 KiB, the last one marked `done`. The answer is bounded:
/// at most ``maximumParts`` parts and the limit's worth of entries are kept; oversized or foreign parts are ignored.
public struct RecorderQuery: Sendable {
    /// One recorder entry as the device reported it.
    public typealias Entry = RecorderWire.Entry

    /// What the device answered.
    public struct Answer: Sendable, Equatable {
        /// The entries, in the device's order.
        public var entries: [Entry]
        /// How many entries matched on the device.
        public var matched: Int
        /// Whether the device left entries out (limit).
        public var truncated: Bool
        /// Whether every part arrived before the deadline.
        public var complete: Bool
        /// The device's refusal of the query, if it refused it.
        public var error: String?
    }

    /// The largest part accepted, bytes (the agent sends at most ``RecorderWire/maximumPartBytes``).
    public static let maximumPartBytes = RecorderWire.maximumPartBytes + 1024
    /// The most parts collected for one answer.
    public static let maximumParts = 512

    /// The MQTT configuration of the `warden-recorder` identity.
    public let configuration: MQTTConfiguration

    /// The lock file that serializes queries made with this identity (`recorder.lock` next to its key).
    public let lockPath: String

    /// Creates a query client connecting with `configuration`; queries take turns on `lockPath`.
    public init(configuration: MQTTConfiguration, lockPath: String) {
        self.configuration = configuration
        self.lockPath = lockPath
    }

    /// The configuration of `layout`'s recorder identity; issues one with `authority()` first if the setup has none
    /// (setups written before the flight recorder existed).
    /// - Throws: ``WardenError`` from issuance, storage or a bad broker setup.
    public static func identity(layout: BrokerLayout, authority: () throws -> Authority, now: Date) throws -> MQTTConfiguration {
        if SecureFile.mode(of: layout.recorderCertificate) != nil, SecureFile.mode(of: layout.recorderKey) != nil {
            return try ServiceIdentity.configuration(
                commonName: DynamicSecurity.recorderUsername, certificate: layout.recorderCertificate, key: layout.recorderKey, layout: layout)
        }
        return try ServiceIdentity.issue(
            commonName: DynamicSecurity.recorderUsername, certificate: layout.recorderCertificate, key: layout.recorderKey,
            authority: try authority(), layout: layout, now: now)
    }

    /// Sends the query for `device`'s entries in `since…until` (unix ms) and collects the answer until it is
    /// complete or `timeout` passes. Returns nil when no part arrived in time (the device is offline or does not
    /// answer).
    /// - Throws: `WardenError.storage` when the broker cannot be reached or refuses the query.
    public func run(device: DeviceID, since: Int64, until: Int64, limit: Int, timeout: Duration) async throws -> Answer? {
        // The broker takes the client id from the certificate, so two queries at once would take each other's
        // session over: queries from this home take turns.
        let lock = try FileLock.acquire(
            lockPath, wait: timeout,
            busy: "another 'warden device timeline' held the recorder identity for longer than the timeout; try again")
        defer { lock.release() }
        let request = RecorderWire.newRequestID()
        let answerTopic = RecorderWire.answerTopic(device: device, request: request)
        let client: MQTTClient
        do {
            client = try MQTTClient(configuration)
            try await client.connect()
        } catch {
            throw WardenError.storage("cannot reach the broker as \(configuration.clientID): \(error)")
        }
        defer { Task { await client.disconnect() } }
        let messages = client.messages
        let granted = try await client.subscribe(answerTopic, qos: 1)
        guard granted < 0x80 else {
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the subscription to \(answerTopic) (reason \(granted)); regenerate the broker setup with 'warden broker config'")
        }
        let query = RecorderWire.Query(request: request, since: since, until: until, limit: limit)
        let code = try await client.publish(MQTTMessage(topic: RecorderWire.queryTopic(device: device), payload: query.encoded(), qos: 1))
        guard code < 0x80 else {
            throw WardenError.policy("the broker refused the recorder query for \(device) (PUBACK \(code))")
        }
        let collector = Collector(request: request, topic: answerTopic, limit: limit)
        let deadline = ContinuousClock.now + timeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in messages {
                    if collector.accept(message) { break }
                }
            }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            _ = await group.next()
            group.cancelAll()
        }
        return collector.answer()
    }

    /// Gathers the parts of one answer.
    final class Collector: @unchecked Sendable {
        // @unchecked: only the collecting task mutates it; `answer()` runs after that task finished.
        let request: String
        let topic: String
        let limit: Int
        var parts: [Int: [Entry]] = [:]
        var last: Int?
        var matched = 0
        var truncated = false
        var error: String?

        init(request: String, topic: String, limit: Int) {
            self.request = request
            self.topic = topic
            self.limit = limit
        }

        /// Takes one message; true when the answer is complete.
        func accept(_ message: MQTTMessage) -> Bool {
            guard message.topic == topic, message.payload.count <= RecorderQuery.maximumPartBytes,
                let part = try? JSONDecoder().decode(RecorderWire.Part.self, from: Data(message.payload)),
                part.request == request, (0..<RecorderQuery.maximumParts).contains(part.part), parts[part.part] == nil
            else { return false }
            let kept = parts.values.reduce(0) { $0 + $1.count }
            parts[part.part] = Array((part.entries ?? []).prefix(max(0, limit - kept)))
            if part.done {
                last = part.part
                matched = part.matched ?? 0
                truncated = part.truncated ?? false
                error = part.error
            }
            return isComplete
        }

        var isComplete: Bool {
            guard let last else { return false }
            return (0...last).allSatisfy { parts[$0] != nil }
        }

        func answer() -> Answer? {
            guard !parts.isEmpty else { return nil }
            let entries = parts.keys.sorted().flatMap { parts[$0] ?? [] }
            return Answer(entries: entries, matched: matched, truncated: truncated, complete: isComplete, error: error)
        }
    }
}
