import EdgeAgent
import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `warden-agent run` renews its certificate in the background against a real `warden serve --broker --https-port`:
/// renew over EST, connect to Mosquitto with the staged identity, promote only then.
@Suite(.serialized) struct AgentRenewalTests: ProcessTestHelpers {
    static let id = "gw-renew-run"

    static let policy = """
        { "version": 1, "description": "devices connect and publish their own up topics",
          "statements": [
            { "sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"], "resources": ["client:${device.id}"] },
            { "sid": "publish-own-up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/#"] } ] }
        """

    @Test(.timeLimit(.minutes(3))) func runRenewsADueCertificateAndPromotesItAfterTheBrokerAcceptedIt() throws {
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)  // Mosquitto may drop to its own user and must reach the broker setup.
        let warden = WardenProcess(home: dir.file("home"))
        let brokerDir = dir.file("broker")
        let port = try MosquittoProcess.freeLoopbackPort()
        let httpsPort = try MosquittoProcess.freeLoopbackPort()
        try Self.ok(try warden.run(["ca", "init", "--org", "Renewal Fleet"]), "ca init")
        try Self.ok(try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)]), "broker config")
        try Self.ok(try warden.run(["policy", "apply", try dir.write("policy.json", Self.policy)]), "policy apply")
        let bundle = dir.file("bundle.pem")
        try Self.ok(try warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")

        // A short-lived first certificate, enrolled by the operator: the CA backdates notBefore by 5 min for clock skew, so
        // with 45 s of remaining validity 2/3 of its lifetime has already passed and it is due at once.
        let state = dir.file("state")
        try Self.ok(try Agent.run(["init", "--id", Self.id, "--out", state, "--trust", bundle]), "agent init")
        try Self.ok(
            try warden.run(["device", "enroll", Self.id, "--csr", state + "/device.csr", "--validity", "45s", "--out", state + "/device.crt.pem"]),
            "enroll")
        let original = try SecureFile.read(state + "/device.crt.pem")
        let originalKey = try SecureFile.read(state + "/device.key")
        let first = try DeviceCertificateInfo.read(original, source: "original")
        let config = dir.file("config.json")
        try Self.ok(try warden.run([
            "device", "config", Self.id, "--broker", "mqtts://127.0.0.1:\(port)", "--https-url", "https://127.0.0.1:\(httpsPort)",
            "--out", config,
        ]), "device config")

        let serveLog = dir.file("serve.log")
        let serve = try warden.start(["serve", "--broker", brokerDir, "--https-port", String(httpsPort)], output: serveLog)
        defer { serve.stop() }
        #expect(Self.waitUntil(timeout: 30) {
            MosquittoProcess.canConnect(port: port) && MosquittoProcess.canConnect(port: httpsPort) && Self.text(serveLog).contains("resync")
        }, "serve ready: \(Self.text(serveLog))")

        let agentLog = dir.file("agent.log")
        let agent = try SpawnedProcess(Agent.executable, [
            "run", "--config", config, "--state", state, "--initial-spread", "0", "--backoff-base", "0.2", "--backoff-cap", "1",
            "--renewal-check", "1",
        ], output: agentLog)
        defer { agent.stop(SIGKILL, grace: 0) }
        #expect(Self.waitUntil(timeout: 90) { Self.text(agentLog).contains("promoted serial") }, "promoted: \(Self.text(agentLog))")

        // The new identity is in place, the old one kept as prev; the broker session runs on.
        let renewed = try DeviceCertificateInfo.read(try SecureFile.read(state + "/device.crt.pem"), source: "renewed")
        #expect(renewed.serial != first.serial)
        #expect(renewed.notAfter.timeIntervalSince(renewed.notBefore) > 3600, "the renewal uses the profile's validity")
        #expect(try SecureFile.read(state + "/device.prev.crt.pem") == original)
        #expect(try SecureFile.read(state + "/device.prev.key") == originalKey)
        #expect(try SecureFile.read(state + "/device.key") != originalKey)
        #expect(!FileManager.default.fileExists(atPath: state + "/device.next.key"))
        let log = Self.text(agentLog)
        #expect(log.contains("renewed identity connected"), "\(log)")
        #expect(!log.contains("PRIVATE KEY"))

        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
    }
}
