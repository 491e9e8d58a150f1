import EdgeCore
import Foundation
import WardenCore
import WardenMQTT

/// The agent's MQTT session (`warden-agent run`): mTLS to the config's broker, a retained birth and Last Will on
/// `d/<id>/up/presence` (docs/EDGE.md, "Presence"), the outbox drained to `d/<id>/up/telemetry`, and reconnection
/// with full jitter (`EdgeCore.ReconnectBackoff`) whenever the link drops.
public struct AgentSession: Sendable {
    /// The session's settings.
    public struct Settings: Sendable {
        /// The device (client id and topic prefix).
        public var device: DeviceID
        /// Broker host.
        public var host: String
        /// Broker port.
        public var port: Int
        /// CA file (PEM) that the broker's certificate must chain to.
        public var caFile: String
        /// The device certificate (PEM, leaf first).
        public var certFile: String
        /// The device key (PEM).
        public var keyFile: String
        /// Reconnect delays.
        public var backoff: ReconnectBackoff
        /// MQTT keep-alive, seconds.
        public var keepAlive: Int

        /// Creates settings.
        public init(
            device: DeviceID, host: String, port: Int, caFile: String, certFile: String, keyFile: String,
            backoff: ReconnectBackoff = ReconnectBackoff(), keepAlive: Int = 30
        ) {
            self.device = device
            self.host = host
            self.port = port
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.backoff = backoff
            self.keepAlive = keepAlive
        }
    }

    /// Splits `mqtts://HOST:PORT` into host and port.
    /// - Throws: `WardenError.badInput` for anything else.
    public static func parseBroker(_ url: String) throws -> (host: String, port: Int) {
        let prefix = "mqtts://"
        guard url.hasPrefix(prefix) else { throw WardenError.badInput("broker '\(url)' is not mqtts://HOST:PORT") }
        let rest = url.dropFirst(prefix.count)
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port)
        else { throw WardenError.badInput("broker '\(url)' is not mqtts://HOST:PORT") }
        var host = String(rest[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/"), !host.contains("@") else {
            throw WardenError.badInput("broker '\(url)' is not mqtts://HOST:PORT")
        }
        return (host, port)
    }

    /// The settings in force.
    public let settings: Settings
    /// Where progress lines go (never key material).
    public let log: @Sendable (String) -> Void

    /// Creates a session; nothing happens until ``run(outbox:)``.
    public init(settings: Settings, log: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.log = log
    }

    /// A fresh presence session id: 16 random bytes, hex.
    static func newSessionID() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    /// Runs until the calling task is cancelled: connect, announce, drain `outbox`, and reconnect with backoff when
    /// the link drops or a connect fails. On cancellation it publishes the offline presence, disconnects and returns.
    public func run(outbox: DurableQueue?) async {
        var backoff = settings.backoff
        var rng = SystemRandomNumberGenerator()
        let presenceTopic = PresenceMessage.topic(device: settings.device.rawValue)
        let telemetryTopic = "d/\(settings.device.rawValue)/up/telemetry"
        if await !Self.pause(seconds: backoff.initialDelay(using: &rng)) { return }
        while !Task.isCancelled {
            let sid = Self.newSessionID()
            // The session id is valid by construction (hex).
            let offline = try! PresenceMessage(state: .offline, session: sid)
            let online = try! PresenceMessage(state: .online, session: sid)
            let will = MQTTMessage(topic: presenceTopic, payload: offline.payload, qos: 1, retain: true)
            let configuration = MQTTConfiguration(
                host: settings.host, port: settings.port, clientID: settings.device.rawValue,
                tls: MQTTTLS(caFile: settings.caFile, certFile: settings.certFile, keyFile: settings.keyFile),
                keepAlive: settings.keepAlive, will: will)
            do {
                let client = try MQTTClient(configuration)
                try await client.connect()
                let birth = try await client.publish(MQTTMessage(topic: presenceTopic, payload: online.payload, qos: 1, retain: true))
                guard birth < 128 else { throw MQTTError(.connectionRefused, reasonCode: birth, "birth refused by the broker") }
                backoff.reset()
                log("connected to \(settings.host):\(settings.port) as \(settings.device) (session \(sid))")
                let stopped = await serve(client, outbox: outbox, topic: telemetryTopic)
                if stopped {
                    // A fresh task: the cancelled one would make these calls throw at once.
                    await Task {
                        _ = try? await client.publish(MQTTMessage(topic: presenceTopic, payload: offline.payload, qos: 1, retain: true))
                        await client.disconnect()
                    }.value
                    log("offline announced; disconnected")
                    return
                }
                log("link to the broker lost")
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                log("connection failed: \(error)")
            }
            let delay = backoff.nextDelay(using: &rng)
            log(String(format: "reconnecting in %.2f s", delay))
            if await !Self.pause(seconds: delay) { return }
        }
    }

    /// Sleeps; false if the task was cancelled.
    static func pause(seconds: Double) async -> Bool {
        guard seconds > 0 else { return !Task.isCancelled }
        do { try await Task.sleep(for: .milliseconds(Int64(seconds * 1000))) } catch { return false }
        return true
    }

    /// Drains the outbox while connected. Returns true when the task was cancelled, false when the link dropped.
    func serve(_ client: MQTTClient, outbox: DurableQueue?, topic: String) async -> Bool {
        var refused = false
        while client.isConnected {
            if Task.isCancelled { return true }
            var sent = 0
            if let outbox, !refused {
                do {
                    let records = try outbox.peek(maxRecords: 64)
                    var delivered: [StoredRecord] = []
                    for record in records {
                        let code = try await client.publish(MQTTMessage(topic: topic, payload: TelemetryOutbox.payload(record), qos: 1))
                        guard code < 128 else {
                            // Not acknowledged: kept for the next connection (the policy may change).
                            log("telemetry refused by the broker (PUBACK \(code)); keeping \(records.count - delivered.count) record(s)")
                            refused = true
                            break
                        }
                        delivered.append(record)
                    }
                    if !delivered.isEmpty {
                        try outbox.acknowledge(delivered)
                        try outbox.commit()
                        sent = delivered.count
                        log("telemetry: delivered \(sent) record(s) up to \(delivered[delivered.count - 1].id)")
                    }
                } catch is CancellationError {
                    return true
                } catch {
                    if Task.isCancelled { return true }
                    log("telemetry: \(error)")
                }
            }
            if sent == 0, await !Self.pause(seconds: 0.2) { return true }
        }
        return Task.isCancelled
    }
}
