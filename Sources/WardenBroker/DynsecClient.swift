import Foundation
import WardenCore
import WardenMQTT

/// Sends dynamic-security commands to a running broker as Warden's control identity.
///
/// One reader task consumes the response topic and hands each response to the request whose correlation data
/// it echoes, so concurrent or retried commands never mix up their answers; every wait is bounded.
public actor DynsecClient {
    let client: MQTTClient
    var connected = false
    var reader: Task<Void, Never>?
    var pending: [String: (expected: Int, collected: [DynamicSecurity.Response], continuation: CheckedContinuation<[DynamicSecurity.Response], any Error>)] = [:]
    /// Longest wait for a response.
    public static let timeout: Duration = .seconds(5)

    /// Which control identity to use.
    public enum Identity: Sendable {
        /// The long-running `warden serve`.
        case daemon
        /// One-shot CLI commands.
        case cli
    }

    /// A client for the setup in `layout`, as `identity`.
    public init(layout: BrokerLayout, identity: Identity = .daemon) throws {
        let metadata = try BrokerMetadata.load(layout)
        let host = metadata.bindAddress == "0.0.0.0" || metadata.bindAddress == "::" ? "127.0.0.1" : metadata.bindAddress
        client = try MQTTClient(
            MQTTConfiguration(
                host: host, port: metadata.port,
                clientID: identity == .daemon ? DynamicSecurity.controlUsername : DynamicSecurity.cliControlUsername,
                tls: identity == .daemon
                    ? MQTTTLS(caFile: layout.caFile, certFile: layout.controlCertificate, keyFile: layout.controlKey)
                    : MQTTTLS(caFile: layout.caFile, certFile: layout.cliControlCertificate, keyFile: layout.cliControlKey),
                keepAlive: 30, cleanStart: true, connectTimeout: .seconds(5)))
    }

    /// Connects and subscribes to the response topic (idempotent).
    public func connect() async throws {
        guard !connected else { return }
        do {
            try await client.connect()
            let messages = client.messages
            reader = Task { [weak self] in
                for await message in messages where message.topic == DynamicSecurity.responseTopic {
                    await self?.deliver(message.payload)
                }
            }
            let granted = try await client.subscribe(DynamicSecurity.responseTopic, qos: 1)
            guard granted < 0x80 else {
                throw WardenError.storage(
                    "the broker refused Warden's control identity access to \(DynamicSecurity.responseTopic) (reason \(granted))")
            }
        } catch let error as MQTTError {
            throw WardenError.storage("cannot reach the broker as \(DynamicSecurity.controlUsername): \(error)")
        }
        connected = true
    }

    func deliver(_ payload: [UInt8]) {
        for response in (try? DynamicSecurity.decode(payload)) ?? [] {
            guard let correlation = response.correlation, let dash = correlation.lastIndex(of: "-") else { continue }
            let key = String(correlation[..<dash])
            guard var entry = pending[key] else { continue }
            entry.collected.append(response)
            if entry.collected.count >= entry.expected {
                pending[key] = nil
                entry.continuation.resume(returning: entry.collected.sorted { ($0.correlation ?? "") < ($1.correlation ?? "") })
            } else {
                pending[key] = entry
            }
        }
    }

    func expire(_ key: String) {
        guard let entry = pending.removeValue(forKey: key) else { return }
        entry.continuation.resume(
            throwing: WardenError.storage("the broker did not answer dynamic-security commands within \(DynsecClient.timeout)"))
    }

    /// Runs `commands` in one control message and returns their responses in order.
    /// - Throws: `.storage` if the broker cannot be reached or does not answer in time.
    public func execute(_ commands: [DynamicSecurity.Command]) async throws -> [DynamicSecurity.Response] {
        guard !commands.isEmpty else { return [] }
        try await connect()
        let key = UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let payload = try DynamicSecurity.encode(commands, correlation: key)
        return try await withCheckedThrowingContinuation { continuation in
            pending[key] = (commands.count, [], continuation)
            Task {
                do {
                    _ = try await client.publish(MQTTMessage(topic: DynamicSecurity.commandTopic, payload: payload, qos: 1, retain: false))
                } catch {
                    self.fail(key, error)
                }
                try? await Task.sleep(for: DynsecClient.timeout)
                self.expire(key)
            }
        }
    }

    func fail(_ key: String, _ error: any Error) {
        guard let entry = pending.removeValue(forKey: key) else { return }
        entry.continuation.resume(throwing: WardenError.storage("dynamic-security command failed: \(error)"))
    }

    /// Disconnects.
    public func close() async {
        reader?.cancel()
        reader = nil
        if connected { await client.disconnect() }
        connected = false
    }
}
