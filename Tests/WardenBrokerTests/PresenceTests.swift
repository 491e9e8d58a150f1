import Foundation
import Testing
import WardenBroker
import WardenCore
import WardenMQTT
import WardenTestSupport

@Suite("device presence from birth and Last Will", .serialized)
struct PresenceTests {
    struct Shown: Decodable {
        let connected: Bool
        let last_seen: String?
    }

    static func show(_ fleet: BrokerFleet, _ id: String) throws -> Shown {
        let result = try fleet.warden.run(["device", "show", id, "--json"])
        guard result.status == 0 else { throw TestSupportError("device show: \(result.stderr)") }
        return try JSONDecoder().decode(Shown.self, from: Data(result.stdout.utf8))
    }

    /// A device session through `proxy` whose Last Will announces `session` offline; it publishes its retained birth.
    static func announce(_ fleet: BrokerFleet, _ device: (key: String, cert: String), id: String, session: String, port: Int) async throws -> MQTTClient {
        let will = MQTTMessage(
            topic: PresenceMessage.topic(device: id), payload: try PresenceMessage(state: .offline, session: session).payload, qos: 1, retain: true)
        let client = try MQTTClient(
            MQTTConfiguration(
                host: "127.0.0.1", port: port, clientID: id,
                tls: MQTTTLS(caFile: fleet.brokerDir + "/ca.pem", certFile: device.cert, keyFile: device.key),
                will: will, connectTimeout: .seconds(5), operationTimeout: .seconds(5)))
        try await client.connect()
        let birth = try PresenceMessage(state: .online, session: session)
        let code = try await client.publish(MQTTMessage(topic: PresenceMessage.topic(device: id), payload: birth.payload, qos: 1, retain: true))
        #expect(code == 0 || code == 16, "birth accepted (\(code))")
        return client
    }

    @Test("device show reports connected and last_seen from the birth, not connected after the Last Will, the kick of a revoke, and ignores garbage")
    func presence() async throws {
        let fleet = try BrokerFleet()
        let device = try fleet.enroll("gw-0002")
        #expect(try Self.show(fleet, "gw-0002").connected == false)
        #expect(try Self.show(fleet, "gw-0002").last_seen == nil, "never seen")
        try fleet.start()
        let proxy = try TCPProxy(upstreamPort: fleet.port)
        defer { proxy.close() }

        let first = try await Self.announce(fleet, device, id: "gw-0002", session: "s1", port: proxy.port)
        #expect(BrokerFleet.waitUntil(timeout: 10) { (try? Self.show(fleet, "gw-0002").connected) == true }, "birth → connected")
        #expect(try Self.show(fleet, "gw-0002").last_seen != nil)

        // Garbage on the presence topic is dropped; the state stays.
        _ = try await first.publish(MQTTMessage(topic: PresenceMessage.topic(device: "gw-0002"), payload: Array("{\"state\":\"sleeping\"}".utf8), qos: 1))
        _ = try await first.publish(MQTTMessage(topic: PresenceMessage.topic(device: "gw-0002"), payload: try PresenceMessage(state: .online, session: "s1").payload, qos: 1, retain: true))
        try await Task.sleep(for: .milliseconds(500))
        #expect(try Self.show(fleet, "gw-0002").connected == true)

        // The link dies without DISCONNECT: the broker publishes the Last Will.
        proxy.cut()
        #expect(BrokerFleet.waitUntil(timeout: 10) { (try? Self.show(fleet, "gw-0002").connected) == false }, "Last Will → not connected")
        await first.disconnect()

        // A new session, then revocation: the kick ends it and show says so.
        let second = try await Self.announce(fleet, device, id: "gw-0002", session: "s2", port: fleet.port)
        defer { Task { await second.disconnect() } }
        #expect(BrokerFleet.waitUntil(timeout: 10) { (try? Self.show(fleet, "gw-0002").connected) == true })
        let revoked = try fleet.warden.run(["device", "revoke", "gw-0002", "--reason", "keyCompromise"])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(try Self.show(fleet, "gw-0002").connected == false)
        #expect(BrokerFleet.waitUntil(timeout: 5) { !second.isConnected }, "the revoke kicked the live session")
    }
}
