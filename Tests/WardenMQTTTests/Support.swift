import Foundation
import Synchronization
import Testing
import WardenMQTT
import WardenTestSupport

/// Collects everything a stream yields on a background task, so tests can wait for a condition with a deadline
/// without cancelling (and thereby terminating) the stream.
final class Collector<Element: Sendable>: Sendable {
    private final class Storage: Sendable {
        let items = Mutex<[Element]>([])
        let finished = Mutex(false)
    }

    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ stream: AsyncStream<Element>) {
        let storage = self.storage
        task = Task {
            for await item in stream { storage.items.withLock { $0.append(item) } }
            storage.finished.withLock { $0 = true }
        }
    }

    deinit { task.cancel() }

    /// Everything received so far.
    var items: [Element] { storage.items.withLock { $0 } }
    /// Whether the stream has finished.
    var isFinished: Bool { storage.finished.withLock { $0 } }

    /// Polls until `condition` holds or `timeout` passes; returns whether it held.
    func wait(timeout: Duration = .seconds(5), until condition: ([Element]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(items) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(items)
    }

    /// Polls until the stream finished or `timeout` passes.
    func waitFinished(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && !isFinished { try? await Task.sleep(for: .milliseconds(20)) }
        return isFinished
    }
}

/// A PKI (test CA + server cert for 127.0.0.1/localhost + client certs) and a mutual-TLS broker
/// (`require_certificate`, `use_identity_as_username`, TLS ≥ 1.2) whose ACL lets:
/// - `alice` read and write `test/#`, only read `denied/#`, write `will/#`;
/// - `bob` read and write `test/#` and `will/#`.
/// Nobody may touch `secret/#`.
final class TLSBrokerFixture: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; MosquittoProcess is itself Sendable.
    let directory: TemporaryDirectory
    let pki: MosquittoTestPKI
    let broker: MosquittoProcess

    init(
        directory: TemporaryDirectory? = nil, serverSAN: String = "IP:127.0.0.1,DNS:localhost",
        clients: [String] = ["alice", "bob", "carol"], extraConfiguration: String = "", useACLFile: Bool = true
    ) throws {
        let directory = try directory ?? TemporaryDirectory()
        self.directory = directory
        pki = try MosquittoTestPKI(in: directory.path, serverSAN: serverSAN)
        for name in clients { try pki.client(name) }
        let acl = directory.file("acl")
        try """
            user alice
            topic readwrite test/#
            topic read denied/#
            topic write will/#

            user bob
            topic readwrite test/#
            topic readwrite will/#

            user carol
            topic readwrite test/#
            topic readwrite will/#

            """.write(toFile: acl, atomically: true, encoding: .utf8)
        let pki = self.pki
        broker = try MosquittoProcess(directory: directory) { port in
            """
            listener \(port) 127.0.0.1
            cafile \(pki.caCert)
            certfile \(pki.serverCert)
            keyfile \(pki.serverKey)
            require_certificate true
            use_identity_as_username true
            tls_version tlsv1.2
            \(useACLFile ? "acl_file \(acl)" : "")
            \(extraConfiguration)
            """
        }
    }

    /// mTLS settings for client `name` of this PKI.
    func tls(_ name: String) -> MQTTTLS {
        let base = pki.directory + "/test-client-" + name
        return MQTTTLS(caFile: pki.caCert, certFile: base + ".crt", keyFile: base + ".key")
    }

    /// A configuration for client `name` connecting to the broker (or to `port`, e.g. a proxy).
    func configuration(
        _ name: String, clientID: String? = nil, port: Int? = nil, will: MQTTMessage? = nil,
        operationTimeout: Duration = .seconds(5)
    ) -> MQTTConfiguration {
        MQTTConfiguration(
            host: "127.0.0.1", port: port ?? broker.port, clientID: clientID ?? "\(name)-\(UUID().uuidString.prefix(8))",
            tls: tls(name), keepAlive: 10, will: will, connectTimeout: .seconds(5), operationTimeout: operationTimeout)
    }

    /// A connected client for `name`.
    func connected(_ name: String, clientID: String? = nil, port: Int? = nil, will: MQTTMessage? = nil) async throws -> MQTTClient {
        let client = try MQTTClient(configuration(name, clientID: clientID, port: port, will: will))
        try await client.connect()
        return client
    }
}

/// Runs `body` and returns how long it took.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let value = try await body()
    return (value, ContinuousClock.now - start)
}

/// The error `body` throws, or nil.
func thrownError(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}
