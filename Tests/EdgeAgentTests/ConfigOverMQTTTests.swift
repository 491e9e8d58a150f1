import Foundation
import Testing
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Signed agent configs delivered over MQTT (docs/AGENT.md, "Configs over MQTT"), end to end: a real `warden serve
/// --broker` (Mosquitto on 127.0.0.1) whose config publisher keeps `d/<id>/down/config` retained, and real
/// `warden-agent run` processes that stage, try, commit or revert them.
@Suite("agent configs over MQTT: apply, refuse, revert, crash recovery", .serialized)
struct ConfigOverMQTTTests {
    /// The default policy plus an observer that may read every device's health report.
    static let policy = """
        { "version": 1, "description": "default + health observer",
          "statements": [
            { "sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"], "resources": ["client:${device.id}"] },
            { "sid": "publish-own-up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/#"] },
            { "sid": "receive-own-down", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/${device.id}/down/#"] },
            { "sid": "observer-reads-health", "effect": "allow", "principals": ["device:obs-0701"],
              "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/+/up/health"] } ] }
        """

    static let pipelineA = """
        { "version": 1, "sensors": [ { "name": "fuel", "kind": "scalar",
            "rules": [ { "name": "low-fuel", "type": "hysteresis", "direction": "below", "on": 15, "off": 20 } ] } ] }
        """
    static let pipelineB = """
        { "version": 1, "sensors": [ { "name": "fuel", "kind": "scalar",
            "rules": [ { "name": "low-fuel", "type": "hysteresis", "direction": "below", "on": 10, "off": 12 } ] } ] }
        """

    /// One authority with its broker and one enrolled agent state (not running yet).
    final class Fleet {
        let dir: TemporaryDirectory
        let warden: WardenProcess
        let id: String
        let port: Int
        let brokerDir: String
        let state: String
        let serveLog: String
        var serve: SpawnedProcess?
        var processes: [SpawnedProcess] = []

        init(id: String) throws {
            self.id = id
            dir = try TemporaryDirectory()
            chmod(dir.path, 0o755)  // Mosquitto may drop to its own user and must reach the broker setup.
            warden = WardenProcess(home: dir.file("home"))
            brokerDir = dir.file("broker")
            port = try MosquittoProcess.freeLoopbackPort()
            state = dir.file("state")
            serveLog = dir.file("serve.log")
            try AgentSessionTests.ok(try warden.run(["ca", "init", "--org", "Config Fleet"]), "ca init")
            try AgentSessionTests.ok(try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)]), "broker config")
            try AgentSessionTests.ok(try warden.run(["policy", "apply", try dir.write("policy.json", ConfigOverMQTTTests.policy)]), "policy apply")
            let bundle = dir.file("bundle.pem")
            try AgentSessionTests.ok(try warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")
            try AgentSessionTests.ok(try Agent.run(["init", "--id", id, "--out", state, "--trust", bundle]), "agent init")
            try AgentSessionTests.ok(
                try warden.run(["device", "enroll", id, "--csr", state + "/device.csr", "--out", state + "/device.crt.pem"]), "enroll")
        }

        deinit {
            for process in processes { process.stop(SIGKILL, grace: 0) }
            serve?.stop()
        }

        /// `warden device config` for the agent: broker port `brokerPort` (default: the live broker).
        func issue(_ name: String, pipeline: String, brokerPort: Int? = nil) throws -> String {
            let out = dir.file(name)
            try AgentSessionTests.ok(try warden.run([
                "device", "config", id, "--broker", "mqtts://127.0.0.1:\(brokerPort ?? port)", "--https-url", "https://127.0.0.1:8443",
                "--pipeline", try dir.write(name + ".pipeline.json", pipeline), "--out", out,
            ]), "device config \(name)")
            return out
        }

        func startServe() throws {
            serve = try warden.start(["serve", "--broker", brokerDir], output: serveLog)
            #expect(AgentSessionTests.waitUntil(timeout: 30) {
                MosquittoProcess.canConnect(port: port) && AgentSessionTests.text(serveLog).contains("resync")
            }, "serve ready: \(AgentSessionTests.text(serveLog))")
        }

        func startAgent(config: String, log: String, trialSeconds: Double) throws -> SpawnedProcess {
            let agent = try SpawnedProcess(Agent.executable, [
                "run", "--config", config, "--state", state, "--initial-spread", "0", "--backoff-base", "0.2", "--backoff-cap", "1",
                "--config-trial-seconds", String(trialSeconds),
            ], output: dir.file(log))
            processes.append(agent)
            return agent
        }

        func log(_ name: String) -> String { AgentSessionTests.text(dir.file(name)) }

        /// How many times the agent log `name` says it connected.
        func sessions(_ name: String) -> Int { log(name).components(separatedBy: "connected to 127.0.0.1").count - 1 }

        func connected() -> Bool {
            guard let r = try? warden.run(["device", "show", id, "--json"]), r.status == 0,
                let shown = try? JSONDecoder().decode(AgentSessionTests.Shown.self, from: Data(r.stdout.utf8))
            else { return false }
            return shown.connected
        }

        /// The `signed.version` of a config file in the state directory, or nil.
        func version(_ file: String) -> Int? {
            guard let data = FileManager.default.contents(atPath: state + "/" + file),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let signed = object["signed"] as? [String: Any]
            else { return nil }
            return signed["version"] as? Int
        }

        /// The accepted floor (`config.version`).
        func floor() -> Int? {
            AgentSessionTests.text(state + "/config.version").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                ? nil : Int(AgentSessionTests.text(state + "/config.version").trimmingCharacters(in: .whitespacesAndNewlines))
        }

        func exists(_ file: String) -> Bool { FileManager.default.fileExists(atPath: state + "/" + file) }

        /// `mosquitto_pub -d` of "hello" on `topic` with a certificate and key; the combined output.
        func tryPublish(cert: String, key: String, topic: String) throws -> String {
            let result = try WardenProcess.launch("/usr/bin/mosquitto_pub", [
                "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "hello", "-d",
                "--cafile", brokerDir + "/ca.pem", "--cert", cert, "--key", key,
            ])
            return result.stdout + result.stderr
        }

        /// Publishes `payload` retained on the agent's config topic with the `warden-config` service identity (the
        /// one `serve` issued), as a compromised authority host or broker could.
        func publishAsConfigService(_ payload: [UInt8]) throws {
            let file = try dir.write("payload-\(UUID().uuidString).json", payload)
            let result = try WardenProcess.launch("/usr/bin/mosquitto_pub", [
                "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-r", "-t", "d/\(id)/down/config", "-f", file,
                "--cafile", brokerDir + "/ca.pem", "--cert", brokerDir + "/config.crt.pem", "--key", brokerDir + "/config.key.pem",
            ])
            guard result.status == 0 else { throw TestSupportError("mosquitto_pub failed (\(result.status)): \(result.stderr)") }
        }
    }

    @Test("(a) a newer config over MQTT is staged, tried and committed; (b) a tampered one and (c) an older one are refused; (d) one pointing at a dead broker is reverted within the deadline and the agent reconnects with the old one; a newer one is applied again")
    func applyRefuseRevert() throws {
        let fleet = try Fleet(id: "gw-0701")
        let v1 = try fleet.issue("v1.json", pipeline: Self.pipelineA)
        // The health observer.
        let observerKeys = try DeviceKeys.make("obs-0701", in: fleet.dir)
        let observerCert = fleet.dir.file("observer.crt.pem")
        try AgentSessionTests.ok(try fleet.warden.run(["device", "enroll", "obs-0701", "--csr", observerKeys.csr, "--out", observerCert]), "enroll observer")
        try fleet.startServe()
        let healthLog = fleet.dir.file("health.log")
        let subscriber = try SpawnedProcess("/usr/bin/stdbuf", [
            "-oL", "-eL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", String(fleet.port), "-V", "mqttv5", "-q", "1",
            "-t", "d/+/up/health", "--cafile", fleet.brokerDir + "/ca.pem", "--cert", observerCert, "--key", observerKeys.key,
        ], output: healthLog)
        defer { subscriber.stop() }

        let agent = try fleet.startAgent(config: v1, log: "agent.log", trialSeconds: 4)
        #expect(AgentSessionTests.waitUntil(timeout: 20) { fleet.connected() }, "connected: \(fleet.log("agent.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 10) { AgentSessionTests.text(fleet.serveLog).contains("config version 1 of gw-0701 published") })
        Thread.sleep(forTimeInterval: 1)
        #expect(!fleet.log("agent.log").contains("config: refused"), "the retained copy of the running version is ignored silently")
        #expect(fleet.sessions("agent.log") == 1)

        // (a) Version 2 with another pipeline: received, staged, session restarted, committed.
        let v2 = try fleet.issue("v2.json", pipeline: Self.pipelineB)
        #expect(AgentSessionTests.waitUntil(timeout: 20) { fleet.log("agent.log").contains("config: version 2 committed") }, "\(fleet.log("agent.log"))")
        #expect(fleet.log("agent.log").contains("config: version 2 received on d/gw-0701/down/config and staged"))
        #expect(fleet.sessions("agent.log") == 2, "reconnected once with the new config")
        #expect(fleet.version("config.current.json") == 2 && fleet.floor() == 2)
        #expect(FileManager.default.contents(atPath: fleet.state + "/config.current.json") == FileManager.default.contents(atPath: v2))
        #expect(FileManager.default.contents(atPath: fleet.state + "/config.previous.json") == FileManager.default.contents(atPath: v1))
        #expect(!fleet.exists("config.staged.json"))
        #expect(AgentSessionTests.waitUntil(timeout: 10) { fleet.connected() })

        // (b) A tampered config (a signed field changed: the version raised) published with the config service's own
        // identity: refused on its signature, nothing staged, no reconnection.
        let v2Text = AgentSessionTests.text(v2)
        let tampered = v2Text.replacingOccurrences(of: #""version" : 2"#, with: #""version" : 9"#)
            .replacingOccurrences(of: #""version": 2"#, with: #""version": 9"#)
        #expect(tampered != v2Text, "the version field was found")
        let refusedBefore = fleet.log("agent.log").components(separatedBy: "config: refused").count
        try fleet.publishAsConfigService(Array(tampered.utf8))
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            fleet.log("agent.log").components(separatedBy: "config: refused").count > refusedBefore
        }, "tampered refused: \(fleet.log("agent.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            AgentSessionTests.text(healthLog).contains(#""config":{"#) && AgentSessionTests.text(healthLog).contains("refused")
        }, "the refusal is reported on the health topic: \(AgentSessionTests.text(healthLog))")
        // Garbage and an oversized payload are refused too, and never crash the feature.
        try fleet.publishAsConfigService(Array("{not json".utf8))
        Thread.sleep(forTimeInterval: 1.5)
        #expect(fleet.version("config.current.json") == 2 && fleet.floor() == 2 && !fleet.exists("config.staged.json"))
        #expect(fleet.sessions("agent.log") == 2 && agent.isRunning)

        // (c) An older, validly signed config (version 1): refused as older, the agent stays on version 2.
        try fleet.publishAsConfigService(Array(AgentSessionTests.text(v1).utf8))
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            fleet.log("agent.log").contains("has version 1, older than the accepted version 2")
        }, "older refused: \(fleet.log("agent.log"))")
        #expect(fleet.version("config.current.json") == 2 && fleet.floor() == 2 && !fleet.exists("config.staged.json"))
        #expect(fleet.sessions("agent.log") == 2 && agent.isRunning)

        // (d) Version 3 points at a port nobody listens on: tried for 4 s, reverted, reconnected with version 2.
        let deadPort = try MosquittoProcess.freeLoopbackPort()
        _ = try fleet.issue("v3.json", pipeline: Self.pipelineB, brokerPort: deadPort)
        #expect(AgentSessionTests.waitUntil(timeout: 10) { fleet.log("agent.log").contains("config: trying version 3") }, "\(fleet.log("agent.log"))")
        let tryStarted = Date()
        #expect(fleet.exists("config.staged.json") && fleet.version("config.staged.json") == 3)
        #expect(AgentSessionTests.waitUntil(timeout: 15) { fleet.log("agent.log").contains("config: version 3 reverted") }, "\(fleet.log("agent.log"))")
        // The reason names the trial's last connection error (from SessionControl, not from parsing log lines).
        #expect(fleet.log("agent.log").split(separator: "\n").contains { $0.contains("config: version 3 reverted") && $0.contains("(last error: ") },
            "\(fleet.log("agent.log"))")
        #expect(Date().timeIntervalSince(tryStarted) < 8, "reverted within the deadline (4 s) plus a poll")
        #expect(fleet.log("agent.log").contains("did not connect within 4 s"))
        #expect(AgentSessionTests.waitUntil(timeout: 15) { fleet.sessions("agent.log") == 3 }, "reconnected with the old config: \(fleet.log("agent.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 10) { fleet.connected() }, "the device shows connected again")
        #expect(fleet.version("config.current.json") == 2 && fleet.floor() == 2 && !fleet.exists("config.staged.json"))
        let rejection = try #require(
            FileManager.default.contents(atPath: fleet.state + "/config.rejected.json")
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] })
        #expect(rejection["version"] as? Int == 3)
        #expect((rejection["reason"] as? String)?.contains("did not connect") == true, "\(rejection)")
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            AgentSessionTests.text(healthLog).contains("config version 3 reverted")
        }, "health reports the revert: \(AgentSessionTests.text(healthLog))")
        // The rejected version stays retained on the topic; it is not retried after the reconnection.
        Thread.sleep(forTimeInterval: 2)
        #expect(fleet.log("agent.log").components(separatedBy: "config: trying version 3").count == 2, "tried once")
        #expect(fleet.sessions("agent.log") == 3)

        // A newer version is tried (and committed) despite the rejection; health is ok again.
        _ = try fleet.issue("v4.json", pipeline: Self.pipelineA)
        #expect(AgentSessionTests.waitUntil(timeout: 20) { fleet.log("agent.log").contains("config: version 4 committed") }, "\(fleet.log("agent.log"))")
        #expect(fleet.version("config.current.json") == 4 && fleet.floor() == 4)
        #expect(fleet.version("config.previous.json") == 2)
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            AgentSessionTests.text(healthLog).split(separator: "\n").last.map { $0.contains(#""status":"ok""#) } == true
        }, "health ok after the commit: \(AgentSessionTests.text(healthLog))")

        // A tampered stored config is never published: the publisher checks it against the registry's digest when it
        // republishes (the connections below, with its identity, kick its session).
        let stored = fleet.dir.file("home") + "/agent-configs/gw-0701.json"
        let storedText = AgentSessionTests.text(stored)
        #expect(storedText.contains(#""version": 4"#))
        try Data(storedText.replacingOccurrences(of: #""version": 4"#, with: #""version": 5"#).utf8).write(to: URL(fileURLWithPath: stored))

        // Least privilege: the device cannot publish its own config, the config service cannot publish elsewhere.
        // (Last: the device's certificate takes over the agent's client id and kicks its session.)
        let byDevice = try fleet.tryPublish(cert: fleet.state + "/device.crt.pem", key: fleet.state + "/device.key", topic: "d/gw-0701/down/config")
        #expect(byDevice.contains("Not authorized") || byDevice.contains("135"), "\(byDevice)")
        for topic in ["d/gw-0701/up/telemetry", "d/gw-0701/down/ota/x", "warden/tuf/timestamp.json"] {
            let byService = try fleet.tryPublish(cert: fleet.brokerDir + "/config.crt.pem", key: fleet.brokerDir + "/config.key.pem", topic: topic)
            #expect(byService.contains("Not authorized") || byService.contains("135"), "\(topic): \(byService)")
        }

        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            AgentSessionTests.text(fleet.serveLog).contains("does not match the registry's digest of version 4 for gw-0701")
        }, "tampered stored config not published: \(AgentSessionTests.text(fleet.serveLog).suffix(2000))")
        Thread.sleep(forTimeInterval: 1)
        #expect(!fleet.log("agent.log").contains("version 5"), "the agent never saw it")

        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
    }

    @Test("(e) kill -9 during a trial: the restarted agent resumes the trial once and reverts to the working config; a crash right after staging resumes and commits; a committed config wins over an older --config file")
    func crashDuringTrial() throws {
        let fleet = try Fleet(id: "gw-0702")
        let v1 = try fleet.issue("v1.json", pipeline: Self.pipelineA)
        try fleet.startServe()
        let first = try fleet.startAgent(config: v1, log: "agent1.log", trialSeconds: 60)
        #expect(AgentSessionTests.waitUntil(timeout: 20) { fleet.connected() }, "connected: \(fleet.log("agent1.log"))")

        // Version 2 points at a dead port; the agent is killed in the middle of its 60 s trial.
        let deadPort = try MosquittoProcess.freeLoopbackPort()
        _ = try fleet.issue("v2.json", pipeline: Self.pipelineB, brokerPort: deadPort)
        #expect(AgentSessionTests.waitUntil(timeout: 10) { fleet.log("agent1.log").contains("config: trying version 2") }, "\(fleet.log("agent1.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 5) { fleet.log("agent1.log").contains("connection failed") })
        kill(first.pid, SIGKILL)
        _ = first.wait()
        #expect(fleet.version("config.staged.json") == 2 && fleet.floor() == 1)

        // Restart (shorter trial): the interrupted trial is resumed once, fails, and the agent reverts to version 1.
        let second = try fleet.startAgent(config: v1, log: "agent2.log", trialSeconds: 3)
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            fleet.log("agent2.log").contains("resuming the interrupted trial of config version 2")
        }, "\(fleet.log("agent2.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 15) { fleet.log("agent2.log").contains("config: version 2 reverted") }, "\(fleet.log("agent2.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 15) { fleet.connected() }, "connected with version 1 again: \(fleet.log("agent2.log"))")
        #expect(fleet.floor() == 1 && !fleet.exists("config.staged.json") && !fleet.exists("config.current.json"))
        kill(second.pid, SIGKILL)
        _ = second.wait()

        // Killed again while a trial runs, twice in a row: the second restart rejects it instead of retrying forever.
        // (Simulated: version 2 staged again with one attempt used, as a kill -9 right after staging leaves it.)
        let v2Bytes = try #require(FileManager.default.contents(atPath: fleet.dir.file("v2.json")))
        try v2Bytes.write(to: URL(fileURLWithPath: fleet.state + "/config.staged.json"))
        try Data("2\n".utf8).write(to: URL(fileURLWithPath: fleet.state + "/config.staged.attempts"))
        try FileManager.default.removeItem(atPath: fleet.state + "/config.rejected.json")
        let check = try Agent.run(["run", "--config", v1, "--state", fleet.state, "--check"])
        #expect(check.status == 0 && fleet.exists("config.staged.json"), "--check leaves a trial alone: \(check.stderr)")
        let third = try fleet.startAgent(config: v1, log: "agent3.log", trialSeconds: 3)
        #expect(AgentSessionTests.waitUntil(timeout: 10) {
            fleet.log("agent3.log").contains("config version 2 rejected: the agent stopped during its trial twice")
        }, "\(fleet.log("agent3.log"))")
        #expect(AgentSessionTests.waitUntil(timeout: 15) { fleet.sessions("agent3.log") >= 1 })
        #expect(!fleet.log("agent3.log").contains("trying version 2"), "a rejected version is never retried")
        kill(third.pid, SIGKILL)
        _ = third.wait()

        // A crash right after a good version 3 was staged: the restart resumes the trial and commits it.
        let v3 = try fleet.issue("v3.json", pipeline: Self.pipelineB)
        try FileManager.default.contents(atPath: v3)!.write(to: URL(fileURLWithPath: fleet.state + "/config.staged.json"))
        try Data("1\n".utf8).write(to: URL(fileURLWithPath: fleet.state + "/config.staged.attempts"))
        let fourth = try fleet.startAgent(config: v1, log: "agent4.log", trialSeconds: 10)
        #expect(AgentSessionTests.waitUntil(timeout: 20) { fleet.log("agent4.log").contains("config: version 3 committed") }, "\(fleet.log("agent4.log"))")
        #expect(fleet.log("agent4.log").contains("resuming the interrupted trial of config version 3"))
        #expect(fleet.version("config.current.json") == 3 && fleet.floor() == 3 && !fleet.exists("config.staged.json"))
        fourth.signal(SIGTERM)
        #expect(fourth.wait() == 0)

        // `run --config v1.json` still works: the committed version 3 (higher) wins and is used.
        let fifth = try fleet.startAgent(config: v1, log: "agent5.log", trialSeconds: 10)
        #expect(AgentSessionTests.waitUntil(timeout: 20) { fleet.sessions("agent5.log") >= 1 }, "\(fleet.log("agent5.log"))")
        #expect(fleet.log("agent5.log").contains("version 3 (delivered over MQTT), newer than"))
        #expect(fleet.log("agent5.log").contains("config verified: device gw-0702 version 3"))
        fifth.signal(SIGTERM)
        #expect(fifth.wait() == 0)
        // A tampered committed config is ignored: the --config file runs instead.
        var current = try #require(FileManager.default.contents(atPath: fleet.state + "/config.current.json"))
        current[current.count / 2] ^= 0x01
        try current.write(to: URL(fileURLWithPath: fleet.state + "/config.current.json"))
        let sixth = try Agent.run(["run", "--config", v1, "--state", fleet.state, "--check"])
        #expect(sixth.status == 1 && sixth.stderr.contains("older than the accepted version 3"), "\(sixth.stdout) \(sixth.stderr)")
        #expect(sixth.stdout.contains("ignoring"), "\(sixth.stdout)")
    }
}
