import Foundation
import Testing
import WardenBroker
import WardenCore
import WardenMQTT
import WardenPKI
import WardenTestSupport
import WardenUpdate

@Suite("rollouts through warden serve", .serialized)
struct OTABlockRolloutReportTests {
    /// Publishes `{"body","signature"}` as `device` on its status topic; the body is signed with `signingKey` by openssl.
    static func report(_ client: MQTTClient, device: String, body: String, signingKey: String, dir: TemporaryDirectory) async throws {
        let bodyPath = dir.file("\(device)-body.json")
        try Data(body.utf8).write(to: URL(fileURLWithPath: bodyPath))
        let signed = try OpenSSLOracle.run(["dgst", "-sha256", "-sign", signingKey, bodyPath])
        guard signed.succeeded else { throw TestSupportError("openssl dgst -sign: \(signed.stderr)") }
        let envelope = #"{"body":"\#(Data(body.utf8).base64EncodedString())","signature":"\#(Data(signed.stdoutBytes).base64EncodedString())"}"#
        let code = try await client.publish(MQTTMessage(topic: OTATopics.status(device: device), payload: Array(envelope.utf8), qos: 1))
        guard code < 0x80 else { throw TestSupportError("status report refused by the broker (\(code))") }
    }

    @Test("a device fetches only its assigned target; its signed report advances the wave; a report signed by another key is refused",
          .timeLimit(.minutes(4)))
    func assignmentsAndSignedReports() async throws {
        let fleet = try BrokerFleet()
        var keys: [String: (key: String, cert: String)] = [:]
        for id in ["ota-ra", "ota-rb"] {
            let made = try DeviceKeys.make(id, in: fleet.dir)
            let cert = fleet.dir.file("\(id).crt.pem")
            let enrolled = try fleet.warden.run(["device", "enroll", id, "--csr", made.csr, "--out", cert, "--group", "lab"])
            #expect(enrolled.status == 0, "\(enrolled.stderr)")
            keys[id] = (made.key, cert)
        }
        let image = try otaRandomImage(3 * 4096)
        let imagePath = fleet.dir.file("fw.bin")
        try Data(image).write(to: URL(fileURLWithPath: imagePath))
        #expect(try fleet.warden.run(["firmware", "keys", "init"]).status == 0)
        #expect(try fleet.warden.run(["firmware", "add", imagePath, "--name", "fw", "--version", "2.0.0", "--hardware", "b", "--block-size", "4KiB"]).status == 0)
        // Another image the device is not assigned.
        let other = try otaRandomImage(4096)
        try Data(other).write(to: URL(fileURLWithPath: fleet.home + "/firmware/" + Digest.hex(Digest.sha256(other))))
        let created = try fleet.warden.run(["rollout", "create", "--target", "fw@2.0.0", "--group", "lab", "--waves", "50,100"])
        #expect(created.status == 0, "\(created.stderr)")

        try fleet.start()
        defer { fleet.stop() }
        let log = fleet.dir.file("serve.log")
        #expect(BrokerFleet.waitUntil(timeout: 20) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("OTA block service subscribed") })

        let device = try #require(keys["ota-ra"])
        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: fleet.port, clientID: "ota-ra",
            tls: MQTTTLS(caFile: fleet.brokerDir + "/ca.pem", certFile: device.cert, keyFile: device.key)))
        try await client.connect()
        defer { Task { await client.disconnect() } }
        #expect(try await client.subscribe(OTATopics.blocks(device: "ota-ra")) < 0x80)
        let inbox = OTAInbox(client.messages)

        // Assigned fw@2.0.0: the other image is forbidden; the assigned one (by name@version) is served.
        let ask = { (request: OTAWire.BlockRequest) in
            _ = try await client.publish(MQTTMessage(topic: OTATopics.request(device: "ota-ra"), payload: try request.encoded(), qos: 1))
        }
        try await ask(OTAWire.BlockRequest(requestID: 1, target: .sha256(Digest.sha256(other)), blockSize: 4096, selection: .ranges([0..<1])))
        #expect(await inbox.wait(seconds: 10) { !$0.isEmpty })
        #expect(inbox.statuses.map(\.code) == [.forbidden])
        inbox.clear()
        try await ask(OTAWire.BlockRequest(requestID: 2, target: .nameVersion(name: "fw", version: "2.0.0"), blockSize: 4096, selection: .ranges([0..<3])))
        #expect(await inbox.wait(seconds: 10) { responses in responses.contains { if case .status = $0 { true } else { false } } })
        #expect(inbox.blocks.count == 3)
        #expect(inbox.statuses.map(\.code) == [.done])

        func rolloutStatus() throws -> [String: Any] {
            let result = try fleet.warden.run(["rollout", "status", "1", "--json"])
            return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]) ?? [:]
        }
        func counts() throws -> [String: Int] { (try rolloutStatus()["counts"] as? [String: Int]) ?? [:] }
        #expect(try counts()["pending"] == 1)

        // A report for ota-ra signed with ota-rb's key: refused, nothing changes.
        let now = Int(Date().timeIntervalSince1970)
        let body = #"{"device":"ota-ra","rollout":1,"state":"succeeded","time":\#(now)}"#
        try await Self.report(client, device: "ota-ra", body: body, signingKey: try #require(keys["ota-rb"]).key, dir: fleet.dir)
        #expect(BrokerFleet.waitUntil(timeout: 10) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("not signed by its current key") })
        #expect(try counts()["succeeded"] == 0)
        // A stale report (an hour old) with the right key: refused.
        try await Self.report(client, device: "ota-ra", body: #"{"device":"ota-ra","rollout":1,"state":"succeeded","time":\#(now - 3600)}"#,
                              signingKey: device.key, dir: fleet.dir)
        #expect(BrokerFleet.waitUntil(timeout: 10) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("too far from now") })
        #expect(try counts()["succeeded"] == 0)

        // The genuine report: ota-ra succeeded, so wave 2 (ota-rb) is released.
        try await Self.report(client, device: "ota-ra", body: body, signingKey: device.key, dir: fleet.dir)
        #expect(BrokerFleet.waitUntil(timeout: 10) { (try? counts()["succeeded"]) == 1 })
        let status = try rolloutStatus()
        #expect((status["rollout"] as? [String: Any])?["currentWave"] as? Int == 1)
        #expect(try counts()["pending"] == 1 && counts()["scheduled"] == 0)
        #expect(try fleet.warden.run(["audit", "log"]).stdout.contains("rollout.report"))
    }
}
