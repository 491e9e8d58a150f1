import EdgeCore
import Foundation
import Synchronization
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
    /// The subsystems run on every connection.
    public let features: [any AgentFeature]
    /// The health board, published on `d/<id>/up/health`.
    public let health: AgentHealth
    /// Lets other parts of the agent ask for a fresh connection.
    public let control: SessionControl
    /// Where progress lines go (never key material).
    public let log: @Sendable (String) -> Void

    /// Creates a session; nothing happens until ``run()``.
    public init(
        settings: Settings, features: [any AgentFeature], health: AgentHealth = AgentHealth(),
        control: SessionControl = SessionControl(), log: @escaping @Sendable (String) -> Void
    ) {
        self.settings = settings
        self.features = features
        self.health = health
        self.control = control
        self.log = log
    }

    /// A fresh presence session id: 16 random bytes, hex.
    static func newSessionID() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    /// How a degraded reason caused by a subscription starts.
    static let subscriptionFailure = "subscription to"

    /// The topic of the health report.
    var healthTopic: String { "d/\(settings.device.rawValue)/up/health" }

    /// Runs until the calling task is cancelled: connect, announce, run the features, and reconnect with backoff
    /// when the link drops, a connect fails or ``SessionControl/requestReconnect()`` is called. On cancellation it
    /// publishes the offline presence, disconnects and returns.
    public func run() async {
        var backoff = settings.backoff
        var rng = SystemRandomNumberGenerator()
        let presenceTopic = PresenceMessage.topic(device: settings.device.rawValue)
        if await !Self.pause(seconds: backoff.initialDelay(using: &rng)) { return }
        while !Task.isCancelled {
            let sid = Self.newSessionID()
            let online: PresenceMessage
            let offline: PresenceMessage
            do {
                online = try PresenceMessage(state: .online, session: sid)
                offline = try PresenceMessage(state: .offline, session: sid)
            } catch {
                // Unreachable: the session id is hex by construction.
                log("presence: \(error)")
                return
            }
            let will = MQTTMessage(topic: presenceTopic, payload: offline.payload, qos: 1, retain: true)
            let identity = control.identity(default: (settings.certFile, settings.keyFile))
            let configuration = MQTTConfiguration(
                host: settings.host, port: settings.port, clientID: settings.device.rawValue,
                tls: MQTTTLS(caFile: settings.caFile, certFile: identity.certFile, keyFile: identity.keyFile),
                keepAlive: settings.keepAlive, will: will)
            do {
                let client = try MQTTClient(configuration)
                try await client.connect()
                let birth = try await client.publish(MQTTMessage(topic: presenceTopic, payload: online.payload, qos: 1, retain: true))
                guard birth < 128 else { throw MQTTError(.connectionRefused, reasonCode: birth, "birth refused by the broker") }
                backoff.reset()
                control.connected(identity: identity)
                log("connected to \(settings.host):\(settings.port) as \(settings.device) (session \(sid))")
                let link = AgentLink(client: client, device: settings.device, session: sid, health: health, log: log)
                let stopped = await serve(link)
                if stopped {
                    // A fresh task: the cancelled one would make these calls throw at once.
                    await Task {
                        _ = try? await client.publish(MQTTMessage(topic: presenceTopic, payload: offline.payload, qos: 1, retain: true))
                        await client.disconnect()
                    }.value
                    log("offline announced; disconnected")
                    return
                }
                if client.isConnected {
                    // A reconnect was requested: leave cleanly (the Last Will is discarded, so say offline first).
                    _ = try? await client.publish(MQTTMessage(topic: presenceTopic, payload: offline.payload, qos: 1, retain: true))
                    await client.disconnect()
                    log("reconnecting on request")
                    continue
                }
                log("link to the broker lost")
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                control.connectFailed(identity: identity, error: "\(error)")
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

    /// Runs the features on one connection. Returns true when the task was cancelled, false when the link dropped
    /// or a reconnect was requested.
    func serve(_ link: AgentLink) async -> Bool {
        let client = link.client
        let router = MessageRouter()
        // Inboxes exist before the first SUBSCRIBE, so retained messages sent right after SUBACK are kept.
        var inboxes: [String: AsyncStream<MQTTMessage>] = [:]
        for feature in features { inboxes[feature.name] = router.inbox(for: feature.name) }
        for feature in features {
            var subscribed = true
            for filter in feature.subscriptions(device: settings.device) {
                router.add(filter: filter, feature: feature.name)
                do {
                    let granted = try await client.subscribe(filter, qos: 1)
                    if granted >= 128 {
                        subscribed = false
                        health.degraded(feature.name, reason: "\(Self.subscriptionFailure) \(filter) refused (SUBACK \(granted))")
                    }
                } catch {
                    if Task.isCancelled { return true }
                    subscribed = false
                    health.degraded(feature.name, reason: "\(Self.subscriptionFailure) \(filter) failed: \(error)")
                }
            }
            // A refusal on an earlier connection is healed once every subscription of the feature succeeded; other
            // reasons (the feature's own failures) are for the feature to clear.
            if subscribed, let entry = health.entry(feature.name), entry.state == "degraded",
                entry.reason?.hasPrefix(Self.subscriptionFailure) == true
            {
                health.ok(feature.name)
            }
        }
        let epoch = control.epoch
        return await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in client.messages { router.deliver(message) }
                router.finish()
            }
            for feature in features {
                let first = inboxes[feature.name]
                group.addTask { await supervise(feature, link: link, router: router, first: first) }
            }
            group.addTask { await publishHealth(link) }
            var cancelled = false
            while client.isConnected, control.epoch == epoch {
                if Task.isCancelled { cancelled = true; break }
                if await !Self.pause(seconds: 0.1) { cancelled = true; break }
            }
            group.cancelAll()
            router.finish()
            return cancelled || Task.isCancelled
        }
    }

    /// Runs one feature for the life of the connection, restarting it after a failure with full-jitter backoff
    /// (1 s doubling to 60 s).
    func supervise(_ feature: any AgentFeature, link: AgentLink, router: MessageRouter, first: AsyncStream<MQTTMessage>?) async {
        var failures = 0
        var rng = SystemRandomNumberGenerator()
        var next = first
        while !Task.isCancelled, link.isConnected {
            let inbox = next ?? router.inbox(for: feature.name)
            next = nil
            do {
                if health.entry(feature.name) == nil { health.ok(feature.name) }
                try await feature.run(link: link, inbox: inbox)
                health.ok(feature.name)
                return
            } catch {
                if Task.isCancelled || !link.isConnected { return }
                failures += 1
                health.degraded(feature.name, reason: "\(error)")
                log("\(feature.name): failed: \(error)")
            }
            let cap = min(60.0, pow(2.0, Double(min(failures, 6)) - 1))
            if await !Self.pause(seconds: Double.random(in: 0...cap, using: &rng)) { return }
        }
    }

    /// Publishes the health board retained on `d/<id>/up/health` now and whenever it changes.
    func publishHealth(_ link: AgentLink) async {
        var published = -1
        while !Task.isCancelled, link.isConnected {
            let generation = health.generation
            if generation != published {
                let code = try? await link.publish(MQTTMessage(topic: healthTopic, payload: health.report(), qos: 1, retain: true))
                if let code, code < 128 { published = generation }
            }
            if await !Self.pause(seconds: 0.5) { return }
        }
    }
}

/// Routes received messages to the inbox of each feature whose filters match.
final class MessageRouter: Sendable {
    private struct State {
        var filters: [(filter: String, feature: String)] = []
        var inboxes: [String: AsyncStream<MQTTMessage>.Continuation] = [:]
        var finished = false
    }

    private let state = Mutex(State())

    func add(filter: String, feature: String) {
        state.withLock { $0.filters.append((filter, feature)) }
    }

    /// A fresh inbox for `feature`, replacing (and finishing) any earlier one.
    func inbox(for feature: String) -> AsyncStream<MQTTMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTMessage.self, bufferingPolicy: .bufferingOldest(AgentLink.inboxCapacity))
        let old: AsyncStream<MQTTMessage>.Continuation? = state.withLock { state in
            if state.finished {
                continuation.finish()
                return nil
            }
            let old = state.inboxes[feature]
            state.inboxes[feature] = continuation
            return old
        }
        old?.finish()
        return stream
    }

    func deliver(_ message: MQTTMessage) {
        let targets: [AsyncStream<MQTTMessage>.Continuation] = state.withLock { state in
            let names = Set(state.filters.filter { TopicFilter.matches($0.filter, message.topic) }.map(\.feature))
            return names.compactMap { state.inboxes[$0] }
        }
        for target in targets { target.yield(message) }
    }

    func finish() {
        let all = state.withLock { state in
            state.finished = true
            defer { state.inboxes = [:] }
            return Array(state.inboxes.values)
        }
        for continuation in all { continuation.finish() }
    }
}
