import Foundation
import Testing
import WardenMQTT
import WardenTestSupport

@Suite("MQTT client against a real mosquitto", .serialized, .timeLimit(.minutes(2)))
struct MQTTClientTests {
    // MARK: Happy path over mutual TLS

    @Test("mTLS connect, subscribe, QoS 0 and QoS 1 round trip with v5 properties")
    func roundTrip() async throws {
        let fixture = try TLSBrokerFixture()
        let alice = try await fixture.connected("alice")
        #expect(alice.isConnected)
        let received = Collector(alice.messages)

        #expect(try await alice.subscribe("test/#", qos: 1) == 1)
        #expect(try await alice.subscribe("test/zero", qos: 0) == 0)

        let qos1 = MQTTMessage(
            topic: "test/one", payload: Array("hello".utf8), qos: 1,
            responseTopic: "test/replies", correlationData: [0, 1, 2, 255])
        #expect(try await alice.publish(qos1) == 0)
        #expect(try await alice.publish(MQTTMessage(topic: "test/zero", payload: [7], qos: 0)) == 0)
        let empty = MQTTMessage(topic: "test/empty", payload: [], qos: 1)
        #expect(try await alice.publish(empty) == 0)

        #expect(await received.wait { $0.count >= 4 })  // test/zero matches two subscriptions
        let one = try #require(received.items.first { $0.topic == "test/one" })
        #expect(one.payload == Array("hello".utf8))
        #expect(one.qos == 1)
        #expect(one.responseTopic == "test/replies")
        #expect(one.correlationData == [0, 1, 2, 255])
        #expect(received.items.contains { $0.topic == "test/zero" && $0.payload == [7] })
        #expect(received.items.contains { $0.topic == "test/empty" && $0.payload.isEmpty })

        try await alice.unsubscribe("test/#")
        try await alice.unsubscribe("test/zero")
        // With no subscriber left, the broker says so in the PUBACK.
        #expect(try await alice.publish(MQTTMessage(topic: "test/one", payload: [1], qos: 1)) == 16)

        await alice.disconnect()
        #expect(!alice.isConnected)
        #expect(await received.waitFinished())
    }

    @Test("Messages cross between two clients; a retained message reaches a later subscriber")
    func twoClients() async throws {
        let fixture = try TLSBrokerFixture()
        let alice = try await fixture.connected("alice")
        let bob = try await fixture.connected("bob")
        let bobReceived = Collector(bob.messages)
        #expect(try await bob.subscribe("test/alice/#") == 1)
        #expect(try await alice.publish(MQTTMessage(topic: "test/alice/x", payload: Array("hi bob".utf8), qos: 1)) == 0)
        #expect(try await alice.publish(MQTTMessage(topic: "test/retained", payload: [42], qos: 1, retain: true)) == 16)
        #expect(await bobReceived.wait { $0.contains { $0.topic == "test/alice/x" && $0.payload == Array("hi bob".utf8) } })
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try await alice.publish(MQTTMessage(topic: "test/alice/big", payload: big, qos: 1)) == 0)
        #expect(await bobReceived.wait { $0.contains { $0.topic == "test/alice/big" && $0.payload == big } })
        #expect(try await bob.subscribe("test/retained") == 1)
        #expect(await bobReceived.wait { $0.contains { $0.topic == "test/retained" && $0.retain && $0.payload == [42] } })
    }

    // MARK: v5 reason codes

    @Test("PUBACK carries v5 reason codes: 16 no subscribers, 135 not authorised (acl_file)")
    func reasonCodes() async throws {
        let fixture = try TLSBrokerFixture()
        let alice = try await fixture.connected("alice")
        // No subscriber on this topic.
        #expect(try await alice.publish(MQTTMessage(topic: "test/nobody/listens", payload: [1], qos: 1)) == 16)
        // The ACL lets alice read denied/#, not write it; and nobody may use secret/#.
        #expect(try await alice.publish(MQTTMessage(topic: "denied/x", payload: [1], qos: 1)) == 135)
        #expect(try await alice.publish(MQTTMessage(topic: "secret/x", payload: [1], qos: 1)) == 135)
        #expect(try await alice.subscribe("denied/#", qos: 1) == 1)
        // acl_file in mosquitto 2.0.11 does not refuse subscriptions (it filters deliveries instead); SUBACK 135
        // comes from dynsec, see MQTTDynamicSecurityTests.
        #expect(try await alice.subscribe("secret/#", qos: 1) == 1)
        // A denied publish must not reach a subscriber that could read it.
        let bob = try await fixture.connected("bob")
        let bobReceived = Collector(bob.messages)
        #expect(try await bob.subscribe("test/#") == 1)
        #expect(try await alice.publish(MQTTMessage(topic: "test/ok", payload: [2], qos: 1)) == 0)
        #expect(await bobReceived.wait { $0.contains { $0.topic == "test/ok" } })
        // The connection survives denials.
        #expect(alice.isConnected)
    }

    @Test("CONNACK refusal surfaces the v5 reason code (135 not authorised)")
    func connackRefused() async throws {
        let broker = try MosquittoProcess { port in
            """
            listener \(port) 127.0.0.1
            allow_anonymous false
            """
        }
        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: broker.port, clientID: "anonymous", tls: nil, connectTimeout: .seconds(5)))
        let error = await thrownError { try await client.connect() }
        #expect(error as? MQTTError == MQTTError(.connectionRefused, reasonCode: 135, ""), "\(String(describing: error))")
        #expect(!client.isConnected)
        // A refused client is closed, not half-usable.
        let after = await thrownError { _ = try await client.publish(MQTTMessage(topic: "a", qos: 1)) }
        #expect((after as? MQTTError)?.code == .disconnected)
    }
}

@Suite("MQTT client against mosquitto with dynamic security", .serialized, .timeLimit(.minutes(2)))
struct MQTTDynamicSecurityTests {
    static let plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

    /// A mutual-TLS broker whose access control is the dynsec plugin: default deny, one role per device
    /// (as Warden does), and an `admin` client allowed on `$CONTROL/dynamic-security/#`.
    static func broker() throws -> TLSBrokerFixture {
        let directory = try TemporaryDirectory()
        let dynsec = directory.file("dynamic-security.json")
        try #"""
            {
              "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": false, "subscribe": false, "unsubscribe": true},
              "clients": [
                {"username": "admin", "roles": [{"rolename": "admin"}]},
                {"username": "alice", "roles": [{"rolename": "device-alice"}]}
              ],
              "groups": [],
              "roles": [
                {"rolename": "admin", "acls": [
                  {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "priority": 0, "allow": true},
                  {"acltype": "publishClientReceive", "topic": "$CONTROL/dynamic-security/#", "priority": 0, "allow": true},
                  {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "priority": 0, "allow": true}]},
                {"rolename": "device-alice", "acls": [
                  {"acltype": "publishClientSend", "topic": "d/alice/up/#", "priority": 0, "allow": true},
                  {"acltype": "publishClientReceive", "topic": "d/alice/#", "priority": 0, "allow": true},
                  {"acltype": "subscribePattern", "topic": "d/alice/#", "priority": 0, "allow": true}]}
              ]
            }
            """#.write(toFile: dynsec, atomically: true, encoding: .utf8)
        return try TLSBrokerFixture(
            directory: directory, clients: ["alice", "admin"],
            extraConfiguration: "plugin \(plugin)\nplugin_opt_config_file \(dynsec)\n", useACLFile: false)
    }

    @Test("dynsec: SUBACK 135 and PUBACK 135 outside the device's role; allowed topics work")
    func dynsecReasonCodes() async throws {
        let fixture = try Self.broker()
        let alice = try await fixture.connected("alice")
        let received = Collector(alice.messages)
        #expect(try await alice.subscribe("d/alice/#") == 1)
        #expect(try await alice.subscribe("d/bob/#") == 135)
        #expect(try await alice.subscribe("#") == 135)
        #expect(try await alice.publish(MQTTMessage(topic: "d/alice/up/telemetry", payload: [1], qos: 1)) == 0)
        #expect(try await alice.publish(MQTTMessage(topic: "d/alice/down/config", payload: [2], qos: 1)) == 135)
        #expect(try await alice.publish(MQTTMessage(topic: "d/bob/up/telemetry", payload: [3], qos: 1)) == 135)
        #expect(await received.wait { $0.contains { $0.topic == "d/alice/up/telemetry" } })
        try await Task.sleep(for: .milliseconds(200))
        #expect(received.items.map(\.topic) == ["d/alice/up/telemetry"])
    }

    @Test("dynsec deleteClient kicks a live session: the disconnections stream fires")
    func dynsecKick() async throws {
        let fixture = try Self.broker()
        let alice = try await fixture.connected("alice")
        let drops = Collector(alice.disconnections)
        let admin = try await fixture.connected("admin")
        let responses = Collector(admin.messages)
        #expect(try await admin.subscribe("$CONTROL/dynamic-security/v1/response") == 1)
        let command = #"{"commands":[{"command":"deleteClient","username":"alice"}]}"#
        #expect(try await admin.publish(MQTTMessage(topic: "$CONTROL/dynamic-security/v1", payload: Array(command.utf8), qos: 1)) == 0)
        #expect(await responses.wait { $0.contains { String(decoding: $0.payload, as: UTF8.self).contains("deleteClient") } })
        // The broker sends DISCONNECT with reason 152 (administrative action) before closing.
        #expect(await drops.wait { $0 == [152] }, "\(drops.items)")
        #expect(await drops.waitFinished())
        #expect(!alice.isConnected)
        #expect(admin.isConnected)
    }
}
