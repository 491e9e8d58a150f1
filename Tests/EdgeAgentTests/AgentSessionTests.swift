import Foundation
import Testing
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `warden-agent run` against a real `warden serve --broker` (Mosquitto on 127.0.0.1), end to end.
@Suite("agent MQTT session: presence, telemetry, shutdown, revocation", .serialized)
struct AgentSessionTests: ProcessTestHelpers {
    struct Shown: Decodable {
        let connected: Bool
        let last_seen: String?
    }

    static let id = "gw-0301"
    static let observer = "obs-0301"

    /// The default policy plus one statement letting the observer read every device's telemetry.
    static let policy = """
        { "version": 1, "description": "default + telemetry observer",
          "statements": [
            { "sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"], "resources": ["client:${device.id}"] },
            { "sid": "publish-own-up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/#"] },
            { "sid": "observer-reads-telemetry", "effect": "allow", "principals": ["device:\(observer)"],
              "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/+/up/telemetry"] } ] }
        """

    static let pipeline = """
        { "version": 1, "sensors": [ { "name": "fuel", "kind": "scalar",
            "rules": [ { "name": "low-fuel", "type": "hysteresis", "direction": "below", "on": 15, "off": 20 } ] } ] }
        """

    @Test("birth → connected + last_seen; replayed telemetry reaches an observer once per queued id; SIGTERM → offline, exit 0; broker restart → re-announced; revoke → cut off, agent keeps retrying")
    func endToEnd() throws {
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)  // Mosquitto may drop to its own user and must reach the broker setup.
        let warden = WardenProcess(home: dir.file("home"))
        let brokerDir = dir.file("broker")
        let port = try MosquittoProcess.freeLoopbackPort()
        try Self.ok(try warden.run(["ca", "init", "--org", "Session Fleet"]), "ca init")
        try Self.ok(try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)]), "broker config")
        try Self.ok(try warden.run(["policy", "apply", try dir.write("policy.json", Self.policy)]), "policy apply")

        // The agent's identity, enrolled from its own CSR.
        let state = dir.file("state")
        let bundle = dir.file("bundle.pem")
        try Self.ok(try warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")
        try Self.ok(try Agent.run(["init", "--id", Self.id, "--out", state, "--trust", bundle]), "agent init")
        let enrolled = dir.file("enrolled.crt.pem")
        try Self.ok(try warden.run(["device", "enroll", Self.id, "--csr", state + "/device.csr", "--out", enrolled]), "enroll")
        let config = dir.file("config.json")
        try Self.ok(try warden.run([
            "device", "config", Self.id, "--broker", "mqtts://127.0.0.1:\(port)", "--https-url", "https://127.0.0.1:8443",
            "--pipeline", try dir.write("pipeline.json", Self.pipeline), "--out", config,
        ]), "device config")
        var rows = "ts,sensor,value\n"
        for i in 0..<40 { rows += "\(1_700_000_000 + i * 10),fuel,\(40 - i)\n" }
        let csv = try dir.write("fuel.csv", rows)
        let runArguments = ["run", "--config", config, "--state", state, "--initial-spread", "0", "--backoff-base", "0.2", "--backoff-cap", "1"]

        // Negative: the certificate is not installed in the state directory yet → one line, exit 2, no session.
        let early = try Agent.run(runArguments)
        #expect(early.status == 2 && early.oneLineError && early.stderr.contains("device.crt.pem"), "\(early.stderr)")
        try FileManager.default.copyItem(atPath: enrolled, toPath: state + "/device.crt.pem")
        let observerKeys = try DeviceKeys.make(Self.observer, in: dir)
        let observerCert = dir.file("observer.crt.pem")
        try Self.ok(try warden.run(["device", "enroll", Self.observer, "--csr", observerKeys.csr, "--out", observerCert]), "enroll observer")

        // The authority with its broker.
        let serveLog = dir.file("serve.log")
        let serve = try warden.start(["serve", "--broker", brokerDir], output: serveLog)
        defer { serve.stop() }
        #expect(Self.waitUntil(timeout: 30) {
            MosquittoProcess.canConnect(port: port) && Self.text(serveLog).contains("resync") && Self.text(serveLog).contains("telemetry ingest subscribed")
        }, "serve ready")
        func show() -> Shown? {
            guard let r = try? warden.run(["device", "show", Self.id, "--json"]), r.status == 0 else { return nil }
            return try? JSONDecoder().decode(Shown.self, from: Data(r.stdout.utf8))
        }
        #expect(show()?.connected == false)

        // The observer subscribes to every device's telemetry.
        let subLog = dir.file("sub.log")
        let subscriber = try SpawnedProcess("/usr/bin/stdbuf", [
            "-oL", "-eL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1",
            "-t", "d/+/up/telemetry", "-d", "--cafile", brokerDir + "/ca.pem", "--cert", observerCert, "--key", observerKeys.key,
        ], output: subLog)
        defer { subscriber.stop() }
        #expect(Self.waitUntil(timeout: 10) { Self.text(subLog).contains("Subscribed (mid: 1): 1") }, "observer subscribed: \(Self.text(subLog))")

        // The agent: replays the CSV into its outbox, connects, announces itself, drains.
        let agentLog = dir.file("agent.log")
        let agent = try SpawnedProcess(Agent.executable, runArguments + ["--replay", csv], output: agentLog)
        defer { agent.stop(SIGKILL, grace: 0) }
        #expect(Self.waitUntil(timeout: 15) { show()?.connected == true }, "connected: \(Self.text(agentLog))")
        #expect(show()?.last_seen != nil)
        let queuedLine = Self.text(agentLog).split(separator: "\n").first { $0.hasPrefix("replay: queued ") }
        let queued = queuedLine.flatMap { Int($0.split(separator: " ")[2]) } ?? -1
        #expect(queued > 0, "\(Self.text(agentLog))")
        // Telemetry travels as batches (TelemetryBatch); the authority's ingest stores each record once.
        struct Stored: Decodable {
            let stored: Int
            let duplicates: Int
            let records: [Record]
            struct Record: Decodable {
                let boot: Int
                let seq: Int
                let record: String?
            }
        }
        func stored() -> Stored? {
            guard let r = try? warden.run(["device", "telemetry", Self.id, "--json", "--limit", "1000"]), r.status == 0 else { return nil }
            return try? JSONDecoder().decode(Stored.self, from: Data(r.stdout.utf8))
        }
        func received() -> Int { stored()?.stored ?? 0 }
        #expect(Self.waitUntil(timeout: 15) { received() >= queued }, "received \(received()) of \(queued)")
        let records = stored()?.records ?? []
        #expect(records.count == queued && Set(records.map { "\($0.boot)/\($0.seq)" }).count == queued, "every queued record once, with a distinct id: \(records.count)")
        #expect(records.allSatisfy { ($0.record.map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? nil) is [String: Any] })
        #expect(records.contains { $0.record?.contains(#""kind":"alert""#) == true }, "the low-fuel alert was delivered")
        // (The batches are binary: read the observer's log without requiring UTF-8.)
        func subscriberLog() -> String { String(decoding: FileManager.default.contents(atPath: subLog) ?? Data(), as: UTF8.self) }
        #expect(Self.waitUntil(timeout: 5) { subscriberLog().contains("'d/\(Self.id)/up/telemetry'") }, "an observer with the right policy still sees the batches")

        // SIGTERM: offline announced, orderly exit.
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
        #expect(Self.text(agentLog).contains("offline announced"))
        #expect(Self.waitUntil(timeout: 10) { show()?.connected == false }, "SIGTERM → not connected")

        // Again, without a replay: nothing is re-sent (the outbox was acknowledged), then revoke cuts it off.
        let before = received()
        let againLog = dir.file("agent2.log")
        // This run also trims its working set every second (docs/AGENT.md, "Memory"): everything below runs on code
        // paged back in after a trim.
        let again = try SpawnedProcess(Agent.executable, runArguments + ["--trim-interval", "1"], output: againLog)
        defer { again.stop(SIGKILL, grace: 0) }
        #expect(Self.waitUntil(timeout: 15) { show()?.connected == true }, "reconnected: \(Self.text(againLog))")
        #expect(Self.waitUntil(timeout: 10) { Self.text(againLog).contains("memory: handed back start-up pages") }, "trimmed: \(Self.text(againLog))")
        // libcurl is opened only by an HTTPS transfer, and this session never needed one.
        let maps = (try? String(contentsOfFile: "/proc/\(again.pid)/maps", encoding: .utf8)) ?? ""
        #expect(maps.contains("warden-agent") && !maps.contains("libcurl"), "libcurl is not loaded by a plain MQTT session")
        // The broker dies (kill -9 by PID; serve restarts it): the agent backs off, reconnects with a new session
        // and announces itself again.
        func brokerPID() -> Int32? {
            (try? String(contentsOfFile: brokerDir + "/mosquitto.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        func sessions() -> Int { Self.text(againLog).components(separatedBy: "connected to 127.0.0.1").count - 1 }
        let oldBroker = try #require(brokerPID())
        kill(oldBroker, SIGKILL)
        #expect(Self.waitUntil(timeout: 20) { sessions() >= 2 }, "re-announced after the broker restart: \(Self.text(againLog))")
        #expect(Self.text(againLog).contains("link to the broker lost"))
        #expect(Self.waitUntil(timeout: 10) { show()?.connected == true }, "connected again after the broker restart")
        #expect(again.isRunning)
        try Self.ok(try warden.run(["device", "revoke", Self.id, "--reason", "keyCompromise"]), "revoke")
        #expect(Self.waitUntil(timeout: 15) { show()?.connected == false }, "revoke → not connected")
        #expect(Self.waitUntil(timeout: 15) { Self.text(againLog).components(separatedBy: "connection failed").count >= 3 },
            "keeps retrying: \(Self.text(againLog))")
        #expect(again.isRunning, "the agent survived the revocation")
        #expect(show()?.connected == false)
        #expect(received() == before && stored()?.duplicates == 0, "no redelivery after acknowledgement")
        again.signal(SIGTERM)
        #expect(again.wait() == 0, "a cut-off agent still stops cleanly")
    }
}
