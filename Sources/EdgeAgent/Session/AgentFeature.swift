import Foundation
import WardenCore
import WardenMQTT

/// One subsystem of the running agent (telemetry, OTA, config updates, the flight recorder's remote queries…).
///
/// The session runs every feature in its own task for the life of each MQTT connection, and hands it the messages
/// that match its ``subscriptions(device:)``. Features are isolated from each other: a feature that throws is marked
/// degraded in ``AgentHealth`` (and the change is published on `d/<id>/up/health`), then restarted with backoff on
/// the same connection. A failing feature never stops the session or the other features.
public protocol AgentFeature: Sendable {
    /// A short, stable name (`telemetry`, `ota`…), used in logs and the health report.
    var name: String { get }

    /// The topic filters this feature needs, subscribed (QoS 1) after every connect. A filter the broker refuses
    /// (SUBACK ≥ 128) marks the feature degraded; the feature still runs.
    func subscriptions(device: DeviceID) -> [String]

    /// Runs while the link is up. `inbox` yields the received messages that match ``subscriptions(device:)``, in
    /// arrival order (at most ``AgentLink/inboxCapacity`` are buffered; older ones are kept, newer ones dropped, so
    /// features must tolerate loss, as MQTT QoS 1 without a persistent session already requires).
    ///
    /// Return when the feature has nothing more to do on this connection; throw to report a failure (the session
    /// restarts the feature after a backoff). The task is cancelled when the link drops or the agent stops.
    func run(link: AgentLink, inbox: AsyncStream<MQTTMessage>) async throws
}

/// What a feature may do on the live connection.
public struct AgentLink: Sendable {
    /// Messages buffered per feature before newer ones are dropped.
    public static let inboxCapacity = 1024

    let client: MQTTClient
    /// The device this agent runs as.
    public let device: DeviceID
    /// The connection's presence session id.
    public let session: String
    /// Where progress lines go (never key material).
    public let log: @Sendable (String) -> Void
    /// The shared health board.
    public let health: AgentHealth

    /// Creates a link over a connected client (the session does this; tests may too).
    public init(client: MQTTClient, device: DeviceID, session: String, health: AgentHealth, log: @escaping @Sendable (String) -> Void) {
        self.client = client
        self.device = device
        self.session = session
        self.health = health
        self.log = log
    }

    /// Whether the connection is still up.
    public var isConnected: Bool { client.isConnected }

    /// The topic `d/<device>/<suffix>`.
    public func deviceTopic(_ suffix: String) -> String { "d/\(device.rawValue)/\(suffix)" }

    /// Publishes a message; returns the PUBACK reason code for QoS 1 (≥ 128 is a refusal).
    /// - Throws: `MQTTError` when the link is down or the call times out; `CancellationError`.
    @discardableResult
    public func publish(_ message: MQTTMessage) async throws -> Int {
        try await client.publish(message)
    }
}

/// MQTT topic-filter matching (MQTT 5 §4.7): `+` matches one level, a trailing `#` any number of levels (including
/// none); filters starting with a wildcard never match topics starting with `$`.
public enum TopicFilter {
    /// Whether `topic` matches `filter`.
    public static func matches(_ filter: String, _ topic: String) -> Bool {
        if topic.hasPrefix("$"), filter.hasPrefix("+") || filter.hasPrefix("#") { return false }
        let f = filter.split(separator: "/", omittingEmptySubsequences: false)
        let t = topic.split(separator: "/", omittingEmptySubsequences: false)
        var i = 0
        while i < f.count {
            if f[i] == "#" { return i == f.count - 1 }
            guard i < t.count else { return false }
            if f[i] != "+", f[i] != t[i] { return false }
            i += 1
        }
        return i == t.count
    }
}
