import EdgeCore
import Foundation
import Testing
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Telemetry from a running agent to the authority's registry, through a 60 s broker outage, with real processes:
/// `warden serve` (supervising Mosquitto, running the `warden-telemetry` ingest), `warden-agent run --simulate`, and
/// `mosquitto_pub` as a device re-sending an already delivered batch.
@Suite("telemetry: batches reach the authority; a 60 s broker outage loses nothing and stores nothing twice", .serialized)
struct TelemetryOutageTests: ProcessTestHelpers {
    static let id = "gw-0401"

    /// One scalar sensor without compression filters (every sample is a record) and a rule the spikes trip.
    static let pipeline = """
        { "version": 1, "sensors": [ { "name": "temp", "kind": "scalar",
            "rules": [ { "name": "spike", "type": "hysteresis", "direction": "above", "on": 85, "off": 80 } ] } ] }
        """

    /// Binds the broker's port as soon as it is free (SO_REUSEADDR, so TIME_WAIT does not stop it) and listens,
    /// closing every connection at once: the supervisor's restarts of Mosquitto fail with "address in use" and every
    /// client is refused, until the test kills this process.
    static let portHolder = """
        import socket, sys, time
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        while True:
            try:
                s.bind(("127.0.0.1", int(sys.argv[1])))
                break
            except OSError:
                time.sleep(0.001)
        s.listen(64)
        print("held", flush=True)
        while True:
            c, _ = s.accept()
            c.close()
        """

    struct Telemetry: Decodable {
        let stored: Int
        let duplicates: Int
        let malformed_batches: Int
        let kept: Int
        let records: [Record]
        struct Record: Decodable {
            let boot: UInt32
            let seq: UInt64
            let record: String?
        }
    }

    @Test("simulated sensor → batches in the registry; broker SIGKILLed and kept down 60 s; backlog drains, every sequence exactly once; a re-sent batch is dropped as duplicates; malformed and foreign batches are refused")
    func outage() throws {
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)  // Mosquitto may drop to its own user and must reach the broker setup.
        let warden = WardenProcess(home: dir.file("home"))
        let brokerDir = dir.file("broker")
        let port = try MosquittoProcess.freeLoopbackPort()
        try Self.ok(try warden.run(["ca", "init", "--org", "Telemetry Fleet"]), "ca init")
        try Self.ok(try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)]), "broker config")
        let state = dir.file("state")
        let bundle = dir.file("bundle.pem")
        try Self.ok(try warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")
        try Self.ok(try Agent.run(["init", "--id", Self.id, "--out", state, "--trust", bundle]), "agent init")
        try Self.ok(try warden.run(["device", "enroll", Self.id, "--csr", state + "/device.csr", "--out", state + "/device.crt.pem"]), "enroll")
        let config = dir.file("config.json")
        try Self.ok(try warden.run([
            "device", "config", Self.id, "--broker", "mqtts://127.0.0.1:\(port)", "--https-url", "https://127.0.0.1:8443",
            "--pipeline", try dir.write("pipeline.json", Self.pipeline), "--out", config,
        ]), "device config")
        let runArguments = ["run", "--config", config, "--state", state, "--initial-spread", "0", "--backoff-base", "0.2", "--backoff-cap", "1"]

        let serveLog = dir.file("serve.log")
        let serve = try warden.start(["serve", "--broker", brokerDir], output: serveLog)
        defer { serve.stop() }
        #expect(Self.waitUntil(timeout: 30) { MosquittoProcess.canConnect(port: port) && Self.text(serveLog).contains("telemetry ingest subscribed") },
            "serve ready: \(Self.text(serveLog))")
        func telemetry() -> Telemetry? {
            guard let r = try? warden.run(["device", "telemetry", Self.id, "--json", "--limit", "100000"]), r.status == 0 else { return nil }
            return try? JSONDecoder().decode(Telemetry.self, from: Data(r.stdout.utf8))
        }
        #expect(telemetry()?.stored == 0)

        // The agent: a 20 Hz synthetic sensor through the pipeline into the outbox, drained in batches.
        let agentLog = dir.file("agent.log")
        let agent = try SpawnedProcess(Agent.executable, runArguments + ["--simulate", "20"], output: agentLog)
        defer { agent.stop(SIGKILL, grace: 0) }
        func sessions() -> Int { Self.text(agentLog).components(separatedBy: "connected to 127.0.0.1").count - 1 }
        func queuedSoFar() -> Int {
            Self.text(agentLog).split(separator: "\n").last { $0.contains("simulate: ") && $0.hasSuffix(" record(s) queued") }
                .flatMap { Int($0.split(separator: " ").dropLast(2).last ?? "") } ?? 0
        }
        #expect(Self.waitUntil(timeout: 20) { (telemetry()?.stored ?? 0) >= 20 }, "telemetry reached the authority before the outage: \(Self.text(agentLog))")
        #expect(Self.text(agentLog).contains("telemetry: delivered"))
        let beforeOutage = try #require(telemetry())
        #expect(beforeOutage.records.allSatisfy { $0.record?.hasPrefix(#"{"kind":"#) == true }, "records stored as the pipeline wrote them")
        #expect(sessions() == 1)

        // The outage: SIGKILL Mosquitto (by PID) and keep its port taken for 60 s, so serve's supervisor cannot bring
        // it back; then free the port and let the supervisor restart it on the same port.
        let holderLog = dir.file("holder.log")
        let holder = try SpawnedProcess("/usr/bin/python3", ["-c", Self.portHolder, String(port)], output: holderLog)
        defer { holder.stop(SIGKILL, grace: 0) }
        let brokerPID = try #require(
            (try? String(contentsOfFile: brokerDir + "/mosquitto.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        let killedAt = Date()
        kill(brokerPID, SIGKILL)
        #expect(Self.waitUntil(timeout: 5) { Self.text(holderLog).contains("held") }, "the port is held")
        #expect(Self.waitUntil(timeout: 10) { Self.text(agentLog).contains("link to the broker lost") })
        let queuedAtOutage = queuedSoFar()
        Thread.sleep(until: killedAt.addingTimeInterval(60))
        #expect(sessions() == 1, "no broker session during the outage")
        #expect(Self.text(serveLog).contains("restarting in"), "the supervisor tried and failed to restart the broker")
        let storedDuringOutage = telemetry()?.stored ?? -1
        #expect(queuedSoFar() >= queuedAtOutage + 800, "the simulator kept queueing during the outage (\(queuedAtOutage) → \(queuedSoFar()))")
        holder.stop(SIGKILL, grace: 0)

        // The broker is back (serve's supervisor, same port); the agent reconnects and drains its backlog.
        #expect(Self.waitUntil(timeout: 25) { sessions() >= 2 }, "the agent reconnected: \(Self.text(agentLog).suffix(2000))")
        let downFor = Date().timeIntervalSince(killedAt)
        #expect(downFor >= 60, "the broker was down \(downFor) s")
        let backlog = queuedSoFar()
        #expect(backlog > storedDuringOutage + 800, "a backlog of \(backlog - storedDuringOutage) record(s) built up")
        #expect(Self.waitUntil(timeout: 20) { (telemetry()?.stored ?? 0) >= backlog }, "the backlog drained: \(telemetry()?.stored ?? -1) of \(backlog)")

        // Stop the simulator: the agent reports exactly how many records it queued and the last id.
        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
        let stopped = try #require(Self.text(agentLog).split(separator: "\n").last { $0.contains("simulate: stopped after queueing ") })
        let words = stopped.split(separator: " ")
        let produced = try #require(Int(words[words.firstIndex(of: "queueing")! + 1]))
        let lastID = try #require(words.last).split(separator: "/")
        let boot = try #require(UInt32(lastID[1]))
        let lastSeq = try #require(UInt64(lastID[2]))
        // A second run (no simulator) sends whatever the first one had not yet delivered when it stopped.
        let drainLog = dir.file("agent2.log")
        let drain = try SpawnedProcess(Agent.executable, runArguments, output: drainLog)
        defer { drain.stop(SIGKILL, grace: 0) }
        #expect(Self.waitUntil(timeout: 20) { (telemetry()?.records.filter { $0.boot == boot }.count ?? 0) >= produced },
            "all \(produced) records of boot \(boot) stored: \(Self.text(drainLog))")
        drain.signal(SIGTERM)
        #expect(drain.wait() == 0)

        // Exactly once: every sequence the agent produced, contiguous, none twice, none missing.
        let final = try #require(telemetry())
        let seqs = final.records.filter { $0.boot == boot }.map(\.seq)
        #expect(seqs.count == produced && final.stored == produced && final.kept == produced, "\(seqs.count) rows, \(final.stored) stored, \(produced) produced")
        #expect(seqs == Array((lastSeq - UInt64(produced) + 1)...lastSeq), "contiguous up to \(lastSeq)")
        #expect(seqs.first == 1, "from the first record of the queue")
        #expect(final.records.contains { $0.record?.contains(#""kind":"alert""#) == true }, "the spike alerts arrived too")
        #expect(final.malformed_batches == 0)

        // A batch re-sent by the device (what a lost PUBACK causes): every record is a duplicate, nothing stored.
        let resent = final.records.prefix(100).map {
            TelemetryBatch.Record(id: MessageID(device: Self.id, bootEpoch: $0.boot, sequence: $0.seq), payload: Array(($0.record ?? "").utf8))
        }
        func publishAsDevice(_ payload: [UInt8], _ name: String) throws {
            let file = dir.file(name)
            try Data(payload).write(to: URL(fileURLWithPath: file))
            try Self.ok(try WardenProcess.launch("/usr/bin/mosquitto_pub", [
                "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-i", Self.id, "-t", "d/\(Self.id)/up/telemetry",
                "-f", file, "--cafile", brokerDir + "/ca.pem", "--cert", state + "/device.crt.pem", "--key", state + "/device.key",
            ]), "mosquitto_pub \(name)")
        }
        try publishAsDevice(try TelemetryBatch.encode(Array(resent)), "resent.bin")
        #expect(Self.waitUntil(timeout: 10) { (telemetry()?.duplicates ?? 0) >= final.duplicates + 100 }, "the re-sent batch counted as duplicates")
        // Malformed (garbage, a truncated batch) and foreign (ids of another device) batches: counted, nothing stored.
        try publishAsDevice(Array("not a batch".utf8), "garbage.bin")
        try publishAsDevice(Array(try TelemetryBatch.encode(Array(resent.prefix(5))).dropLast(3)), "truncated.bin")
        let foreign = [TelemetryBatch.Record(id: MessageID(device: "gw-9999", bootEpoch: 1, sequence: 1), payload: Array("{}".utf8))]
        try publishAsDevice(try TelemetryBatch.encode(foreign), "foreign.bin")
        #expect(Self.waitUntil(timeout: 10) { telemetry()?.malformed_batches == 3 }, "\(Self.text(serveLog).suffix(1500))")
        let after = try #require(telemetry())
        #expect(after.stored == produced && after.kept == produced, "nothing more stored")
        #expect(after.duplicates == final.duplicates + 100)
        #expect(Self.text(serveLog).contains("names another device"))
        // The ingest's identity is least-privilege: it may not read presence, nor publish anywhere (the broker refuses).
        let tls = ["-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "--cafile", brokerDir + "/ca.pem",
                   "--cert", brokerDir + "/telemetry.crt.pem", "--key", brokerDir + "/telemetry.key.pem"]
        let peek = try WardenProcess.launch("/usr/bin/mosquitto_sub", tls + ["-t", "d/+/up/presence", "-E", "-W", "5"])
        #expect(peek.stdout.contains("denied") || peek.stderr.contains("denied"), "presence subscription refused: \(peek.stdout) \(peek.stderr)")
        let push = try WardenProcess.launch("/usr/bin/mosquitto_pub", tls + ["-t", "d/\(Self.id)/down/config", "-m", "x", "-d"])
        #expect(push.stdout.contains("RC:135") || push.stderr.contains("RC:135"), "publish refused: \(push.stdout) \(push.stderr)")
        // The CLI: text output, --limit and --since, and bad input (one line, exit 2) or an unknown device (exit 1).
        let text = try warden.run(["device", "telemetry", Self.id, "--limit", "3", "--since", "1h"])
        #expect(text.status == 0 && text.stdout.split(separator: "\n").count == 4 && text.stdout.contains("\(produced) stored, \(after.duplicates) duplicate(s) dropped, 3 malformed"), "\(text.stdout)")
        for bad in [["--since", "3x"], ["--limit", "0"], ["--limit", "100001"]] {
            let r = try warden.run(["device", "telemetry", Self.id] + bad)
            #expect(r.status == 2 && r.oneLineError, "\(bad): \(r.status) \(r.stderr)")
        }
        #expect(try warden.run(["device", "telemetry", "gw-4040"]).status != 0)
        let shown = try warden.run(["device", "show", Self.id, "--json"])
        #expect(shown.stdout.contains(#""telemetry_records" : \#(produced)"#) && shown.stdout.contains("last_telemetry"), "\(shown.stdout)")
    }
}
