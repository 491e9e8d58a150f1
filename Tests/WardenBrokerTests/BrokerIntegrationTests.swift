import Foundation
import Testing
import WardenBroker
import WardenCore
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A Warden home with a CA, a broker setup and a running `warden serve`, driven like a user would.
final class BrokerFleet: @unchecked Sendable {
    // @unchecked: immutable after init except `serve`, which only the owning test touches.
    let dir: TemporaryDirectory
    let warden: WardenProcess
    let brokerDir: String
    let port: Int
    var serve: SpawnedProcess?

    init() throws {
        dir = try TemporaryDirectory()
        // Mosquitto drops to its own user when started as root: it must be able to traverse to the setup.
        chmod(dir.path, 0o755)
        warden = WardenProcess(home: dir.file("home"))
        brokerDir = dir.file("broker")
        port = try MosquittoProcess.freeLoopbackPort()
        let created = try warden.run(["ca", "init", "--org", "Broker Fleet"])
        guard created.status == 0 else { throw TestSupportError("ca init: \(created.stderr)") }
        let config = try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)])
        guard config.status == 0 else { throw TestSupportError("broker config: \(config.stderr)") }
    }

    deinit { stop() }

    /// The Warden home.
    var home: String { warden.home }

    /// File names in `path`.
    func files(in path: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    /// Starts `warden serve --broker DIR` and waits for the broker port.
    func start() throws {
        let previous = brokerPID
        let log = dir.file("serve.log")
        serve = try warden.start(["serve", "--broker", brokerDir], output: log)
        // Ready when a broker other than a leftover one runs, listens, and the start-up resync is logged.
        let ready = Self.waitUntil(timeout: 20) {
            guard let pid = self.brokerPID, pid != previous, MosquittoProcess.canConnect(port: self.port) else { return false }
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let starts = text.components(separatedBy: "broker started").count - 1
            let resyncs = text.components(separatedBy: "resync").count - 1
            return starts >= 1 && resyncs >= starts
        }
        guard ready else { throw TestSupportError("warden serve did not get the broker ready on \(port)") }
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
    static func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    /// PID of the supervised broker, from its pid file.
    var brokerPID: Int32? {
        (try? String(contentsOfFile: brokerDir + "/mosquitto.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// SIGTERM (or SIGKILL) to `warden serve`, then wait for it.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32? {
        guard let serve else { return nil }
        serve.stop(signal)
        self.serve = nil
        return serve.wait()
    }

    /// Enrolls a device; returns (key, chain) paths.
    @discardableResult
    func enroll(_ id: String, validity: String? = nil) throws -> (key: String, cert: String) {
        let made = try DeviceKeys.make(id, in: dir)
        let cert = dir.file("\(id).crt.pem")
        let result = try warden.run(["device", "enroll", id, "--csr", made.csr, "--out", cert] + (validity.map { ["--validity", $0] } ?? []))
        guard result.status == 0 else { throw TestSupportError("enroll \(id): \(result.stderr)") }
        return (made.key, cert)
    }

    /// mosquitto_pub as `device` (MQTT v5, QoS 1).
    func publish(_ device: (key: String, cert: String), topic: String) throws -> WardenProcess.Result {
        try WardenProcess.launch("mosquitto_pub", [
            "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "hello",
            "--cafile", brokerDir + "/ca.pem", "--cert", device.cert, "--key", device.key, "-d",
        ])
    }

    /// Starts a long-lived mosquitto_sub as `device`; its output goes to `log`.
    func startSubscriber(_ device: (key: String, cert: String), topic: String, log: String) throws -> SpawnedProcess {
        // stdbuf: mosquitto_sub's -d lines must reach the file as they happen.
        try SpawnedProcess("/usr/bin/stdbuf", [
            "-oL", "-eL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-t", topic, "-d",
            "--cafile", brokerDir + "/ca.pem", "--cert", device.cert, "--key", device.key,
        ], output: log)
    }

    /// Whether `device` completes a TLS+MQTT connect (publishing to its own up topic).
    func canConnect(_ device: (key: String, cert: String), id: String) throws -> Bool {
        let result = try publish(device, topic: "d/\(id)/up/probe")
        return result.combined.contains("CONNACK (0)")
    }

    /// mosquitto_sub as `device`, exiting after `count` messages or `seconds`.
    func subscribe(_ device: (key: String, cert: String), topic: String, seconds: Int = 2) throws -> WardenProcess.Result {
        try WardenProcess.launch("mosquitto_sub", [
            "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-t", topic, "-W", String(seconds),
            "--cafile", brokerDir + "/ca.pem", "--cert", device.cert, "--key", device.key, "-d",
        ])
    }
}

@Suite("broker enforcement with real Mosquitto", .serialized)
struct BrokerIntegrationTests {
    @Test("own topics allowed; other devices' topics, #, d/+/… and $CONTROL denied with reason 135")
    func topicRules() throws {
        let fleet = try BrokerFleet()
        let alpha = try fleet.enroll("alpha-01")
        let beta = try fleet.enroll("beta-02")
        try fleet.start()
        let own = try fleet.publish(alpha, topic: "d/alpha-01/up/telemetry")
        #expect(own.status == 0, "\(own.combined)")
        #expect(!own.combined.contains("Not authorized"))
        for topic in ["d/beta-02/up/telemetry", "d/alpha-01/down/config", "$CONTROL/dynamic-security/v1", "fleet/all"] {
            let denied = try fleet.publish(alpha, topic: topic)
            #expect(denied.combined.contains("Not authorized") || denied.combined.contains("135"), "\(topic): \(denied.combined)")
        }
        // Receive: the authority (control identity) sends to alpha's down/ tree; alpha gets it, beta does not.
        let alphaLog = fleet.dir.file("alpha-down.log")
        let betaLog = fleet.dir.file("beta-down.log")
        let alphaSub = try fleet.startSubscriber(alpha, topic: "d/alpha-01/down/#", log: alphaLog)
        let betaSub = try fleet.startSubscriber(beta, topic: "d/beta-02/down/#", log: betaLog)
        defer { alphaSub.stop(); betaSub.stop() }
        #expect(BrokerFleet.waitUntil(timeout: 5) {
            ((try? String(contentsOfFile: alphaLog, encoding: .utf8)) ?? "").contains("Subscribed (mid: 1): 1")
                && ((try? String(contentsOfFile: betaLog, encoding: .utf8)) ?? "").contains("Subscribed (mid: 1): 1")
        })
        let sent = try WardenProcess.launch("mosquitto_pub", [
            "-h", "127.0.0.1", "-p", String(fleet.port), "-V", "mqttv5", "-q", "1", "-t", "d/alpha-01/down/config", "-m", "config-v2",
            "--cafile", fleet.brokerDir + "/ca.pem", "--cert", fleet.brokerDir + "/control-cli.crt.pem",
            "--key", fleet.brokerDir + "/control-cli.key.pem", "-d",
        ])
        #expect(sent.combined.contains("RC:0"), "\(sent.combined)")
        #expect(BrokerFleet.waitUntil(timeout: 5) { ((try? String(contentsOfFile: alphaLog, encoding: .utf8)) ?? "").contains("config-v2") })
        #expect(!((try? String(contentsOfFile: betaLog, encoding: .utf8)) ?? "").contains("config-v2"))
        for filter in ["#", "d/+/down/#", "d/beta-02/down/#", "$CONTROL/#"] {
            let denied = try fleet.subscribe(alpha, topic: filter, seconds: 1)
            #expect(denied.combined.contains("denied") || denied.combined.contains("135"), "\(filter): \(denied.combined)")
        }
    }
}


@Suite("revocation reaches the broker", .serialized)
struct BrokerRevocationTests {
    @Test("revoke: the live session is dropped within 1 s of the command returning, reconnects are refused, others unaffected")
    func revokeKicks() throws {
        let fleet = try BrokerFleet()
        let victim = try fleet.enroll("victim-01")
        let bystander = try fleet.enroll("bystander-02")
        try fleet.start()
        let victimLog = fleet.dir.file("victim.log")
        let bystanderLog = fleet.dir.file("bystander.log")
        let victimSub = try fleet.startSubscriber(victim, topic: "d/victim-01/down/#", log: victimLog)
        let bystanderSub = try fleet.startSubscriber(bystander, topic: "d/bystander-02/down/#", log: bystanderLog)
        defer { bystanderSub.stop(); victimSub.stop() }
        #expect(BrokerFleet.waitUntil(timeout: 5) {
            ((try? String(contentsOfFile: victimLog, encoding: .utf8)) ?? "").contains("Subscribed")
                && ((try? String(contentsOfFile: bystanderLog, encoding: .utf8)) ?? "").contains("Subscribed")
        })
        let revoked = try fleet.warden.run(["device", "revoke", "victim-01", "--reason", "keyCompromise"])
        let returned = Date()
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(revoked.stdout.contains("live session disconnected"))
        #expect(BrokerFleet.waitUntil(timeout: 1.0) { !victimSub.isRunning }, "the revoked device's session must end within 1 s")
        #expect(Date().timeIntervalSince(returned) < 1.0)
        #expect(bystanderSub.isRunning, "other devices keep their sessions")
        let retry = try fleet.publish(victim, topic: "d/victim-01/up/again")
        #expect(!retry.combined.contains("received CONNACK"), "reconnect refused at the TLS handshake: \(retry.combined)")
        #expect(try fleet.canConnect(bystander, id: "bystander-02"))
    }

    @Test("the broker refuses at the handshake a foreign CA's certificate, an expired one and a revoked one")
    func handshakeRefusals() throws {
        let fleet = try BrokerFleet()
        let good = try fleet.enroll("good-01")
        let shortLived = try fleet.enroll("short-02", validity: "1s")
        let revoked = try fleet.enroll("revoked-03")
        #expect(try fleet.warden.run(["device", "revoke", "revoked-03", "--reason", "superseded"]).status == 0)
        try fleet.start()
        #expect(try fleet.canConnect(good, id: "good-01"))
        Thread.sleep(forTimeInterval: 1.5)
        let expired = try fleet.publish(shortLived, topic: "d/short-02/up/x")
        #expect(!expired.combined.contains("CONNACK (0)"), "expired: \(expired.combined)")
        #expect(try !fleet.canConnect(revoked, id: "revoked-03"))
        // Same CN, same software, but another CA.
        let stranger = try BrokerFleet()
        let foreign = try stranger.enroll("good-01")
        let result = try fleet.publish(foreign, topic: "d/good-01/up/x")
        #expect(!result.combined.contains("CONNACK (0)"), "foreign CA: \(result.combined)")
    }

    @Test("reserved names, including the control identity, can never be issued to a device")
    func reservedNames() throws {
        let fleet = try BrokerFleet()
        for name in ["warden-control", "warden-broker", "mosquitto", "admin"] {
            let made = try DeviceKeys.make(name, in: fleet.dir, name: "reserved-\(name)")
            let result = try fleet.warden.run(["device", "enroll", name, "--csr", made.csr])
            #expect(result.status == 1, "\(name): \(result.stderr)")
            #expect(result.stderr.contains("reserved"))
            let token = try fleet.warden.run(["device", "token", name])
            #expect(token.status == 1, "token for \(name): \(token.stderr)")
        }
    }
}

@Suite("broker failure handling", .serialized)
struct BrokerFailureTests {
    @Test("a corrupted or foreign CRL never reaches the broker; revocation stays enforced")
    func corruptedCRL() throws {
        let fleet = try BrokerFleet()
        let revoked = try fleet.enroll("revoked-01")
        #expect(try fleet.warden.run(["device", "revoke", "revoked-01", "--reason", "keyCompromise"]).status == 0)
        try fleet.start()
        let live = try String(contentsOfFile: fleet.brokerDir + "/crl.pem", encoding: .utf8)
        let issuer = try String(contentsOfFile: fleet.home + "/ca/issuing.crt.pem", encoding: .utf8)
        let layout = BrokerLayout(directory: fleet.brokerDir)
        var corrupted = Array(live.utf8)
        corrupted[corrupted.count / 2] ^= 0x04
        let stranger = try BrokerFleet()
        let foreignCRL = try String(contentsOfFile: stranger.home + "/ca/crl.pem", encoding: .utf8)
        for bad in [String(decoding: corrupted, as: UTF8.self), "garbage", String(live.prefix(live.count / 2)), foreignCRL] {
            #expect(throws: WardenError.self) {
                try CRLPublisher.publish(crlPEM: bad, issuerPEM: issuer, layout: layout, now: Date())
            }
            #expect(try String(contentsOfFile: fleet.brokerDir + "/crl.pem", encoding: .utf8) == live)
        }
        #expect(fleet.files(in: fleet.brokerDir).allSatisfy { !$0.hasSuffix(".tmp") })
        #expect(try !fleet.canConnect(revoked, id: "revoked-01"), "revocation checking still on")
    }

    @Test("a crashed broker is restarted and resynced; a device enrolled while it was down gets its role")
    func crashAndResync() throws {
        let fleet = try BrokerFleet()
        let first = try fleet.enroll("first-01")
        try fleet.start()
        #expect(try fleet.canConnect(first, id: "first-01"))
        let oldPID = try #require(fleet.brokerPID)
        kill(oldPID, SIGKILL)
        #expect(BrokerFleet.waitUntil(timeout: 10) { (fleet.brokerPID ?? oldPID) != oldPID && MosquittoProcess.canConnect(port: fleet.port) })
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try fleet.canConnect(first, id: "first-01"))
        // Broker down (serve stopped): enroll, then start again: the start-up reconcile creates the role.
        #expect(fleet.stop() == 0, "SIGTERM is a graceful, successful stop")
        #expect(BrokerFleet.waitUntil(timeout: 5) { !MosquittoProcess.canConnect(port: fleet.port) }, "SIGTERM stops the broker too")
        let late = try fleet.enroll("late-02")
        try fleet.start()
        let published = try fleet.publish(late, topic: "d/late-02/up/x")
        #expect(published.combined.contains("CONNACK (0)") && !published.combined.contains("Not authorized"), "\(published.combined)")
    }

    @Test("kill -9 of warden serve loses no registry change the CLI reported done, and a restart adopts the broker")
    func killNine() throws {
        let fleet = try BrokerFleet()
        try fleet.start()
        let device = try fleet.enroll("durable-01")
        fleet.stop(signal: SIGKILL)
        let shown = try fleet.warden.run(["device", "show", "durable-01", "--json"])
        #expect(shown.status == 0)
        #expect(try fleet.warden.run(["audit", "verify"]).status == 0)
        try fleet.start()
        #expect(try fleet.canConnect(device, id: "durable-01"))
    }
}
