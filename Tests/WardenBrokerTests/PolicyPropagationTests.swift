import Foundation
import Testing
import WardenBroker
import WardenCore
import WardenMQTT
import WardenStore
import WardenTestSupport

/// Policy versions reach a live broker: `policy apply` pushes the recompiled roles itself, and `warden serve`
/// notices a new active version on its own.
@Suite("policy apply reaches the broker", .serialized, .timeLimit(.minutes(4)))
struct PolicyPropagationTests {
    static let wide = """
        {"version": 1, "statements": [
          {"sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"],
           "resources": ["client:${device.id}"]},
          {"sid": "publish-own-up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"],
           "resources": ["topic:d/${device.id}/up/#"]},
          {"sid": "receive-own-down", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"],
           "resources": ["topic:d/${device.id}/down/#"]}
        ]}
        """
    /// Removes publishing to up/events (only up/telemetry stays) and every down/ permission.
    static let narrow = """
        {"version": 1, "statements": [
          {"sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"],
           "resources": ["client:${device.id}"]},
          {"sid": "publish-telemetry-only", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"],
           "resources": ["topic:d/${device.id}/up/telemetry"]}
        ]}
        """

    /// A live MQTT v5 session as `id`.
    static func session(_ fleet: BrokerFleet, _ device: (key: String, cert: String), id: String) async throws -> MQTTClient {
        let client = try MQTTClient(
            MQTTConfiguration(
                host: "127.0.0.1", port: fleet.port, clientID: id,
                tls: MQTTTLS(caFile: fleet.brokerDir + "/ca.pem", certFile: device.cert, keyFile: device.key),
                connectTimeout: .seconds(5), operationTimeout: .seconds(5)))
        try await client.connect()
        return client
    }

    /// PUBACK reason code for `topic` on a new session, or nil if no session could be made.
    static func publishCode(_ fleet: BrokerFleet, _ device: (key: String, cert: String), id: String, topic: String) async -> Int? {
        guard let client = try? await session(fleet, device, id: id) else { return nil }
        let code = try? await client.publish(MQTTMessage(topic: topic, payload: Array("x".utf8), qos: 1))
        await client.disconnect()
        return code
    }

    /// Publishes on fresh sessions until one is refused with 135 (or 10 s pass); returns the code and when the refused
    /// session started.
    static func firstDenial(
        _ fleet: BrokerFleet, _ device: (key: String, cert: String), id: String, topic: String, since: Date
    ) async -> (code: Int?, started: Date) {
        var code: Int?
        var started = Date()
        while Date().timeIntervalSince(since) < 10 {
            started = Date()
            code = await publishCode(fleet, device, id: id, topic: topic)
            if code == 135 { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return (code, started)
    }

    /// Sends `payload` to `topic` as Warden's CLI control identity (allowed on devices' down/ trees).
    static func sendDown(_ fleet: BrokerFleet, topic: String, payload: String) throws -> WardenProcess.Result {
        try WardenProcess.launch("mosquitto_pub", [
            "-h", "127.0.0.1", "-p", String(fleet.port), "-V", "mqttv5", "-q", "1", "-t", topic, "-m", payload,
            "--cafile", fleet.brokerDir + "/ca.pem", "--cert", fleet.brokerDir + "/control-cli.crt.pem",
            "--key", fleet.brokerDir + "/control-cli.key.pem", "-d",
        ])
    }

    static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    @Test("apply that removes a permission: the live device loses it within 1 s (PUBACK 135, no more down/ messages); rollback restores it")
    func applyRemovesPermission() async throws {
        let fleet = try BrokerFleet()
        let wide = try fleet.dir.write("wide.json", Self.wide)
        let narrow = try fleet.dir.write("narrow.json", Self.narrow)
        #expect(try fleet.warden.run(["policy", "apply", wide]).status == 0)
        let device = try fleet.enroll("live-01")
        let other = try fleet.enroll("other-02")
        try fleet.start()

        // Live: an MQTT session publishing to up/events, and a subscriber on its down/ tree.
        let live = try await Self.session(fleet, device, id: "live-01")
        let before = try await live.publish(MQTTMessage(topic: "d/live-01/up/events", payload: Array("a".utf8), qos: 1))
        #expect(before == 0 || before == 16, "allowed before: PUBACK \(before)")
        let subLog = fleet.dir.file("live-down.log")
        let subscriber = try fleet.startSubscriber(device, topic: "d/live-01/down/#", log: subLog)
        defer { subscriber.stop() }
        #expect(BrokerFleet.waitUntil(timeout: 5) { Self.text(subLog).contains("Subscribed (mid: 1): 1") })
        #expect(try Self.sendDown(fleet, topic: "d/live-01/down/config", payload: "before-apply").status == 0)
        #expect(BrokerFleet.waitUntil(timeout: 5) { Self.text(subLog).contains("before-apply") })

        let applied = try fleet.warden.run(["policy", "apply", narrow])
        let returned = Date()
        #expect(applied.status == 0, "\(applied.stderr)")
        // The CLI pushes the roles itself (unless serve's poll got there first, which leaves nothing to rewrite).
        #expect(applied.stdout.contains("broker: rewrote the roles of 2 device(s)") || applied.stdout.contains("broker: no device role changed"), "\(applied.stdout)")
        #expect(!applied.stdout.contains("warning"), "\(applied.stdout)")

        // The live session is dropped (dynsec disconnects the clients of a changed role) …
        #expect(BrokerFleet.waitUntil(timeout: 1.0) { !live.isConnected }, "the live session was not disconnected")
        // … and within 1 s of the command returning, the device's publish to up/events is refused with PUBACK 135,
        // while up/telemetry is still allowed.
        // (Measured from the start of the publishing session, so a slow handshake on a loaded machine does not count.)
        let (code, started) = await Self.firstDenial(fleet, device, id: "live-01", topic: "d/live-01/up/events", since: returned)
        #expect(code == 135, "publish after apply: \(String(describing: code))")
        #expect(started.timeIntervalSince(returned) < 1.0, "denied for a session started \(started.timeIntervalSince(returned)) s after apply")
        let telemetry = await Self.publishCode(fleet, device, id: "live-01", topic: "d/live-01/up/telemetry")
        #expect(telemetry == 0 || telemetry == 16, "\(String(describing: telemetry))")
        // The subscriber (which reconnects by itself) no longer receives its down/ messages.
        #expect(try Self.sendDown(fleet, topic: "d/live-01/down/config", payload: "after-apply").status == 0)
        try await Task.sleep(for: .milliseconds(500))
        #expect(!Self.text(subLog).contains("after-apply"), "\(Self.text(subLog))")
        #expect(await Self.publishCode(fleet, other, id: "other-02", topic: "d/other-02/up/events") == 135)

        // Rollback to version 1: the permission comes back.
        let rolled = try fleet.warden.run(["policy", "rollback", "1"])
        #expect(rolled.status == 0, "\(rolled.stderr)")
        let restored = await Self.publishCode(fleet, device, id: "live-01", topic: "d/live-01/up/events")
        #expect(restored == 0 || restored == 16, "\(String(describing: restored))")
        #expect(try fleet.warden.run(["audit", "verify"]).status == 0)
    }

    @Test("warden serve notices a version stored by another process (no CLI push) and rewrites the roles within 1 s")
    func serveNoticesNewVersion() async throws {
        let fleet = try BrokerFleet()
        let device = try fleet.enroll("poll-01")
        try fleet.start()
        let initial = await Self.publishCode(fleet, device, id: "poll-01", topic: "d/poll-01/up/events")
        #expect(initial == 0 || initial == 16, "built-in default allows up/#: \(String(describing: initial))")
        // Store a version directly in the registry, as another host would: nothing is pushed to the broker.
        let registry = try Registry(path: fleet.home + "/warden.sqlite")
        let narrow = try fleet.dir.write("narrow.json", Self.narrow)
        let result = try PolicyRelease.apply(path: narrow, home: fleet.home, registry: registry, actor: "test:other-host", now: Date())
        guard case .stored(let version) = result.outcome else {
            Issue.record("not stored: \(result.outcome)")
            return
        }
        #expect(version.version == 1)
        let stored = Date()
        let (code, started) = await Self.firstDenial(fleet, device, id: "poll-01", topic: "d/poll-01/up/events", since: stored)
        #expect(code == 135, "serve rewrote the role: \(String(describing: code))")
        #expect(started.timeIntervalSince(stored) < 1.0, "denied for a session started \(started.timeIntervalSince(stored)) s after the store")
        #expect(BrokerFleet.waitUntil(timeout: 2) { Self.text(fleet.dir.file("serve.log")).contains("policy version 1 in force") })
    }

    @Test("a device the policy no longer lets connect loses its broker client (live session dropped, nothing authorized)")
    func connectDenied() async throws {
        let fleet = try BrokerFleet()
        let wide = try fleet.dir.write("wide.json", Self.wide)
        #expect(try fleet.warden.run(["policy", "apply", wide]).status == 0)
        let kept = try fleet.enroll("kept-01")
        let barred = try fleet.enroll("barred-02")
        try fleet.start()
        let live = try await Self.session(fleet, barred, id: "barred-02")
        let denyConnect = try fleet.dir.write("deny-connect.json", Self.wide.replacingOccurrences(
            of: #"{"version": 1, "statements": ["#,
            with: #"{"version": 1, "statements": [{"sid": "bar-02", "effect": "deny", "principals": ["device:barred-02"], "actions": ["mqtt:connect"], "resources": ["client:barred-02"]},"#))
        let applied = try fleet.warden.run(["policy", "apply", denyConnect])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("barred-02"), "\(applied.stdout)")
        #expect(BrokerFleet.waitUntil(timeout: 1.0) { !live.isConnected }, "the barred device's live session ends")
        let layout = BrokerLayout(directory: fleet.brokerDir)
        let dynsec = try DynsecClient(layout: layout, identity: .cli)
        let clients = try await dynsec.execute([.listClients]).first?.names ?? []
        await dynsec.close()
        #expect(!clients.contains("barred-02") && clients.contains("kept-01"), "\(clients)")
        let code = await Self.publishCode(fleet, barred, id: "barred-02", topic: "d/barred-02/up/x")
        // Mosquitto 2.0 still completes CONNECT for a certificate-authenticated device without a dynsec client (only the
        // CRL refuses a handshake), but with no client nothing is authorized.
        #expect(code == 135, "no client: nothing is authorized (\(String(describing: code)))")
        let keptCode = await Self.publishCode(fleet, kept, id: "kept-01", topic: "d/kept-01/up/x")
        #expect(keptCode == 0 || keptCode == 16)
        // A broker set up afresh under the same policies leaves the barred device out from the start.
        let fresh = fleet.dir.file("fresh-broker")
        let config = try fleet.warden.run(["broker", "config", "--out", fresh, "--port", "1"])
        #expect(config.status == 0, "\(config.stderr)")
        let setup = try String(contentsOfFile: BrokerLayout(directory: fresh).dynamicSecurity, encoding: .utf8)
        #expect(setup.contains("\"kept-01\"") && !setup.contains("\"barred-02\""), "\(setup)")
    }
}
