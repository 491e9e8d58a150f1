import Foundation
import Synchronization
import Testing
@testable import WardenMQTT
import WardenTestSupport

@Suite("MQTT client failure modes", .serialized, .timeLimit(.minutes(2)))
struct MQTTFailureTests {
    // MARK: Connect refused / TLS failures

    @Test("A client certificate from a foreign CA fails TLS promptly, not after the timeout")
    func foreignClientCertificate() async throws {
        let fixture = try TLSBrokerFixture()
        let foreign = try MosquittoTestPKI(in: fixture.directory.path, name: "foreign")
        let (cert, key) = try foreign.client("alice")
        var configuration = fixture.configuration("alice")
        configuration.tls = MQTTTLS(caFile: fixture.pki.caCert, certFile: cert, keyFile: key)
        configuration.connectTimeout = .seconds(30)  // so "prompt" below cannot be the timeout
        let client = try MQTTClient(configuration)
        let (error, elapsed) = await timed { await thrownError { try await client.connect() } }
        #expect((error as? MQTTError)?.code == .tls, "\(String(describing: error))")
        #expect(elapsed < .seconds(20))
        #expect(!client.isConnected)
    }

    @Test("An encrypted client key fails TLS at once instead of prompting for a passphrase")
    func encryptedKey() async throws {
        let fixture = try TLSBrokerFixture()
        var configuration = fixture.configuration("alice")
        let encrypted = fixture.directory.file("alice-encrypted.key")
        let converted = try Oracle.openssl([
            "pkey", "-in", configuration.tls!.keyFile, "-aes256", "-passout", "pass:secret", "-out", encrypted,
        ])
        try #require(converted.status == 0, "\(converted.stderr)")
        configuration.tls?.keyFile = encrypted
        configuration.connectTimeout = .seconds(30)
        let client = try MQTTClient(configuration)
        let (error, elapsed) = await timed { await thrownError { try await client.connect() } }
        #expect((error as? MQTTError)?.code == .tls, "\(String(describing: error))")
        #expect(elapsed < .seconds(20))
    }

    @Test("Trusting the wrong CA fails TLS: the broker certificate does not verify")
    func wrongCAFile() async throws {
        let fixture = try TLSBrokerFixture()
        let foreign = try MosquittoTestPKI(in: fixture.directory.path, name: "foreign")
        var configuration = fixture.configuration("alice")
        configuration.tls?.caFile = foreign.caCert
        configuration.connectTimeout = .seconds(30)
        let client = try MQTTClient(configuration)
        let (error, elapsed) = await timed { await thrownError { try await client.connect() } }
        #expect((error as? MQTTError)?.code == .tls, "\(String(describing: error))")
        #expect(elapsed < .seconds(20))
    }

    @Test("A server certificate that does not name the host fails TLS; skipping the check (tests only) connects")
    func hostnameMismatch() async throws {
        let fixture = try TLSBrokerFixture(serverSAN: "DNS:broker.invalid")
        let client = try MQTTClient(fixture.configuration("alice"))
        let error = await thrownError { try await client.connect() }
        #expect((error as? MQTTError)?.code == .tls, "\(String(describing: error))")

        // Same CA, same certificate: only the name check differs, so it is what failed above.
        var configuration = fixture.configuration("alice")
        configuration.tls?.insecureSkipHostnameCheck = true
        let insecure = try MQTTClient(configuration)
        try await insecure.connect()
        #expect(insecure.isConnected)
        await insecure.disconnect()
    }

    @Test("The server certificate's DNS SAN matches when connecting by name")
    func hostnameByDNSName() async throws {
        let fixture = try TLSBrokerFixture(serverSAN: "DNS:localhost")
        var configuration = fixture.configuration("alice")
        configuration.host = "localhost"
        let client = try MQTTClient(configuration)
        try await client.connect()
        #expect(client.isConnected)
        await client.disconnect()
    }

    @Test("Nothing listening: a network error, immediately")
    func noBroker() async throws {
        let port = try MosquittoProcess.freeLoopbackPort()
        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: port, clientID: "nobody-home", tls: nil, connectTimeout: .seconds(30)))
        let (error, elapsed) = await timed { await thrownError { try await client.connect() } }
        #expect((error as? MQTTError)?.code == .network, "\(String(describing: error))")
        // Refused at once, not by the 30 s timeout (generous margin: the suite runs in parallel on 2 shared cores).
        #expect(elapsed < .seconds(20))
    }

    @Test("A peer that accepts TCP but never answers: connect times out within the bound")
    func silentPeer() async throws {
        let fixture = try TLSBrokerFixture()
        let proxy = try TCPProxy(upstreamPort: fixture.broker.port)
        defer { proxy.close() }
        proxy.blackhole()
        var configuration = fixture.configuration("alice", port: proxy.port)
        configuration.connectTimeout = .seconds(1)
        let client = try MQTTClient(configuration)
        let (error, elapsed) = await timed { await thrownError { try await client.connect() } }
        #expect((error as? MQTTError)?.code == .timeout, "\(String(describing: error))")
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(10))
    }

    // MARK: Last Will and disconnections

    @Test("The Last Will is published when the client's socket drops, and not after a clean disconnect")
    func lastWill() async throws {
        let fixture = try TLSBrokerFixture()
        let carol = try await fixture.connected("carol")
        let wills = Collector(carol.messages)
        #expect(try await carol.subscribe("will/#") == 1)

        // bob reaches the broker through a relay that the test can cut, as if bob lost power.
        let proxy = try TCPProxy(upstreamPort: fixture.broker.port)
        defer { proxy.close() }
        let will = MQTTMessage(topic: "will/bob", payload: Array("offline".utf8), qos: 1)
        let bob = try await fixture.connected("bob", port: proxy.port, will: will)
        let bobDrops = Collector(bob.disconnections)
        #expect(try await bob.publish(MQTTMessage(topic: "will/bob", payload: Array("online".utf8), qos: 1)) == 0)
        #expect(await wills.wait { $0.contains { $0.payload == Array("online".utf8) } })

        proxy.cut()
        #expect(await wills.wait { $0.contains { $0.topic == "will/bob" && $0.payload == Array("offline".utf8) } })
        // bob notices too: one disconnection (a libmosquitto socket error code, not a broker reason code).
        #expect(await bobDrops.wait { $0.count == 1 })
        #expect(await bobDrops.waitFinished())
        if let code = bobDrops.items.first { #expect(code > 0 && code < 128, "code \(code)") }
        #expect(!bob.isConnected)

        // A clean DISCONNECT discards the will.
        let before = wills.items.count
        let polite = try await fixture.connected("bob", will: MQTTMessage(topic: "will/polite", payload: [1], qos: 1))
        await polite.disconnect()
        try await Task.sleep(for: .milliseconds(500))
        #expect(wills.items.count == before)
        #expect(!wills.items.contains { $0.topic == "will/polite" })
    }

    @Test("A second client with the same id takes the session over: the first is dropped and stays dropped")
    func sessionTakenOver() async throws {
        let fixture = try TLSBrokerFixture()
        let first = try await fixture.connected("alice", clientID: "alice-device")
        let drops = Collector(first.disconnections)
        let messages = Collector(first.messages)
        let second = try await fixture.connected("alice", clientID: "alice-device")
        // mosquitto 2.0.11 queues DISCONNECT 142 (session taken over) but closes the socket at once, so the client
        // normally sees the socket drop (7, connection lost); 142 is accepted should the packet get through.
        #expect(await drops.wait { $0 == [142] || $0 == [7] }, "\(drops.items)")
        #expect(await drops.waitFinished())
        #expect(await messages.waitFinished())
        #expect(!first.isConnected)
        let error = await thrownError { try await first.publish(MQTTMessage(topic: "test/x", qos: 1)) }
        #expect((error as? MQTTError)?.code == .disconnected)
        // The usurper works, and nothing reconnected the first behind our back (it would take the session back).
        try await Task.sleep(for: .milliseconds(1500))
        #expect(second.isConnected)
        #expect(try await second.publish(MQTTMessage(topic: "test/x", payload: [1], qos: 1)) == 16)
    }

    @Test("Stopping the broker: the disconnections stream fires and outstanding calls fail fast")
    func brokerStops() async throws {
        let fixture = try TLSBrokerFixture()
        let client = try await fixture.connected("alice")
        let drops = Collector(client.disconnections)
        fixture.broker.stop()
        // mosquitto 2.0.11 closes sockets on SIGTERM without a DISCONNECT: a lost connection (7).
        #expect(await drops.wait { $0 == [7] || $0 == [139] }, "\(drops.items)")
        #expect(!client.isConnected)
        let error = await thrownError { try await client.publish(MQTTMessage(topic: "test/x", qos: 1)) }
        #expect((error as? MQTTError)?.code == .disconnected)
    }

    @Test("A publish waiting for its PUBACK fails with .disconnected when the connection drops")
    func pendingFailsOnDrop() async throws {
        let fixture = try TLSBrokerFixture()
        let proxy = try TCPProxy(upstreamPort: fixture.broker.port)
        defer { proxy.close() }
        var configuration = fixture.configuration("alice", port: proxy.port)
        configuration.operationTimeout = .seconds(30)
        let client = try MQTTClient(configuration)
        try await client.connect()
        proxy.blackhole()
        let pending = Task { try await client.publish(MQTTMessage(topic: "test/x", payload: [1], qos: 1)) }
        try await Task.sleep(for: .milliseconds(300))
        proxy.cut()
        let (result, elapsed) = await timed { await pending.result }
        #expect(throws: MQTTError.self) { try result.get() }
        if case .failure(let error as MQTTError) = result { #expect(error.code == .disconnected) }
        #expect(elapsed < .seconds(20))
    }

    // MARK: Bounded waits, cancellation, no leaked continuations

    @Test("A broker that stops answering: publish and subscribe time out within operationTimeout")
    func operationTimeout() async throws {
        let fixture = try TLSBrokerFixture()
        let proxy = try TCPProxy(upstreamPort: fixture.broker.port)
        defer { proxy.close() }
        let client = try MQTTClient(fixture.configuration("alice", port: proxy.port, operationTimeout: .seconds(1)))
        try await client.connect()
        proxy.blackhole()
        let (error, elapsed) = await timed {
            await thrownError { try await client.publish(MQTTMessage(topic: "test/x", payload: [1], qos: 1)) }
        }
        #expect((error as? MQTTError)?.code == .timeout, "\(String(describing: error))")
        #expect(elapsed < .seconds(10))
        let subscribeError = await thrownError { _ = try await client.subscribe("test/#") }
        #expect((subscribeError as? MQTTError)?.code == .timeout)
        // disconnect() is bounded too, even though the DISCONNECT cannot get through.
        let (_, disconnectTime) = await timed { await client.disconnect() }
        #expect(disconnectTime < .seconds(10))
    }

    @Test("Cancelling a task waiting on publish throws CancellationError at once; the client stays usable")
    func cancellation() async throws {
        let fixture = try TLSBrokerFixture()
        let proxy = try TCPProxy(upstreamPort: fixture.broker.port)
        defer { proxy.close() }
        let client = try MQTTClient(fixture.configuration("alice", port: proxy.port, operationTimeout: .seconds(30)))
        try await client.connect()
        proxy.blackhole()
        let waiting = Task { try await client.publish(MQTTMessage(topic: "test/x", payload: [1], qos: 1)) }
        try await Task.sleep(for: .milliseconds(300))
        waiting.cancel()
        let (result, elapsed) = await timed { await waiting.result }
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(elapsed < .seconds(10))  // the operation timeout is 30 s

        // Already cancelled before the call.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.publish(MQTTMessage(topic: "test/y", payload: [1], qos: 1))
        }
        let earlyResult = await early.result
        #expect(throws: CancellationError.self) { try earlyResult.get() }

        // The late PUBACKs of the abandoned publishes are dropped; new calls get their own answers.
        proxy.resume()
        #expect(try await client.publish(MQTTMessage(topic: "test/z", payload: [1], qos: 1)) == 16)
        #expect(try await client.publish(MQTTMessage(topic: "denied/z", payload: [1], qos: 1)) == 135)
        #expect(client.isConnected)
        // Nothing is left behind: no waiter, no early result, no abandoned id once the late PUBACKs arrived.
        let deadline = ContinuousClock.now + .seconds(3)
        while client.bookkeepingCount > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(client.bookkeepingCount == 0)
    }

    @Test("200 sequential and 200 concurrent QoS 1 publishes all complete with their own reason codes")
    func manyPublishes() async throws {
        let fixture = try TLSBrokerFixture()
        let alice = try await fixture.connected("alice")
        let bob = try await fixture.connected("bob")
        let received = Collector(bob.messages)
        #expect(try await bob.subscribe("test/load/#") == 1)
        for i in 0..<200 {
            let code = try await alice.publish(MQTTMessage(topic: "test/load/\(i)", payload: Array("\(i)".utf8), qos: 1))
            #expect(code == 0)
        }
        let codes = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<200 {
                // Even: delivered (0). Odd: denied by the ACL (135). A mix-up of message ids would show.
                let topic = i % 2 == 0 ? "test/load/c\(i)" : "denied/c\(i)"
                group.addTask { try await alice.publish(MQTTMessage(topic: topic, payload: [UInt8(i % 256)], qos: 1)) }
            }
            var codes: [Int] = []
            for try await code in group { codes.append(code) }
            return codes
        }
        #expect(codes.count == 200)
        #expect(codes.filter { $0 == 0 }.count == 100)
        #expect(codes.filter { $0 == 135 }.count == 100)
        #expect(await received.wait { $0.count == 300 }, "\(received.items.count)")
        #expect(bob.droppedMessageCount == 0)
        #expect(alice.bookkeepingCount == 0)
        #expect(bob.bookkeepingCount == 0)
    }

    // MARK: Misuse is refused before anything is sent

    @Test("Invalid configurations are refused by init")
    func invalidConfigurations() throws {
        let base = MQTTConfiguration(host: "127.0.0.1", port: 1883, clientID: "x", tls: nil)
        var badPort = base
        badPort.port = 0
        var badKeepAlive = base
        badKeepAlive.keepAlive = 1
        var nul = base
        nul.clientID = "a\u{0}b"
        var missingFile = base
        missingFile.tls = MQTTTLS(caFile: "/nonexistent/ca.crt", certFile: "/nonexistent/c.crt", keyFile: "/nonexistent/c.key")
        var badWill = base
        badWill.will = MQTTMessage(topic: "will/#", payload: [1])
        var passwordOnly = base
        passwordOnly.password = "secret"
        for configuration in [badPort, badKeepAlive, nul, missingFile, badWill, passwordOnly] {
            #expect(throws: MQTTError(.invalidArgument, "")) { _ = try MQTTClient(configuration) }
        }
    }

    @Test("Invalid arguments and calls out of order are refused without touching the network")
    func misuse() async throws {
        let fixture = try TLSBrokerFixture()
        let idle = try MQTTClient(fixture.configuration("alice"))
        let notConnected = await thrownError { try await idle.publish(MQTTMessage(topic: "test/x", qos: 1)) }
        #expect((notConnected as? MQTTError)?.code == .disconnected)

        let alice = try await fixture.connected("alice")
        let again = await thrownError { try await alice.connect() }
        #expect((again as? MQTTError)?.code == .invalidState)
        let invalid: [MQTTMessage] = [
            MQTTMessage(topic: "", qos: 1),
            MQTTMessage(topic: "test/+", qos: 1),
            MQTTMessage(topic: "test/#", qos: 1),
            MQTTMessage(topic: "test/x", qos: 3),
            MQTTMessage(topic: "test/x", qos: -1),
            MQTTMessage(topic: "test/\u{0}x", qos: 1),
            MQTTMessage(topic: "test/x", qos: 1, responseTopic: "reply/#"),
            MQTTMessage(topic: "test/x", qos: 1, correlationData: [UInt8](repeating: 0, count: 65_536)),
        ]
        for message in invalid {
            let error = await thrownError { try await alice.publish(message) }
            #expect((error as? MQTTError)?.code == .invalidArgument, "\(message.topic) qos \(message.qos)")
        }
        for filter in ["", "test/#/x", "test/a+", "te\u{0}st"] {
            let error = await thrownError { _ = try await alice.subscribe(filter) }
            #expect((error as? MQTTError)?.code == .invalidArgument, "\(filter)")
        }
        let badQoS = await thrownError { _ = try await alice.subscribe("test/x", qos: 5) }
        #expect((badQoS as? MQTTError)?.code == .invalidArgument)
        #expect(alice.isConnected)

        await alice.disconnect()
        await alice.disconnect()  // idempotent
        let afterDisconnect = await thrownError { try await alice.publish(MQTTMessage(topic: "test/x", qos: 1)) }
        #expect((afterDisconnect as? MQTTError)?.code == .disconnected)
    }

    @Test("Dropping a connected client without disconnect() closes it cleanly (no crash, broker sees it leave)")
    func dropWithoutDisconnect() async throws {
        let fixture = try TLSBrokerFixture()
        for i in 0..<5 {
            var client: MQTTClient? = try await fixture.connected("alice", clientID: "dropped-\(i)")
            _ = try await client?.subscribe("test/#")
            client = nil
            _ = client
        }
        try await Task.sleep(for: .milliseconds(500))
        let log = fixture.broker.log
        #expect(log.contains("dropped-4"))
        #expect(fixture.broker.isRunning)
    }
}
