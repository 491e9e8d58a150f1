import Foundation
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A fleet for the flight-recorder and fault-isolation tests: a CA, a broker setup, a policy (the default one plus
/// an observer device that may read every device's `up/` tree), one enrolled agent with a signed config, and
/// `warden serve --broker` running. Processes are stopped by PID when the fixture goes away.
final class RecorderFixture: ProcessTestHelpers {
    let dir: TemporaryDirectory
    let warden: WardenProcess
    let brokerDir: String
    let port: Int
    let id: String
    let state: String
    let config: String
    let serve: SpawnedProcess
    let observerCert: String
    let observerKey: String
    private var spawned: [SpawnedProcess] = []

    /// The default policy plus one statement letting `observer` read every device's `up/` tree; without
    /// `receiveDown`, devices may not subscribe to their `down/` tree.
    static func policy(observer: String, receiveDown: Bool = true) -> String {
        let down = receiveDown
            ? #"{ "sid": "receive-own-down", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/${device.id}/down/#"] },"#
            : ""
        return """
        { "version": 1, "description": "default + observer",
          "statements": [
            { "sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"], "resources": ["client:${device.id}"] },
            { "sid": "publish-own-up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/#"] },
            \(down)
            { "sid": "read-tuf-metadata", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:warden/tuf/#"] },
            { "sid": "observer-reads-up", "effect": "allow", "principals": ["device:\(observer)"],
              "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/+/up/#"] } ] }
        """
    }

    static let pipeline = """
        { "version": 1, "sensors": [ { "name": "fuel", "kind": "scalar",
            "rules": [ { "name": "low-fuel", "type": "hysteresis", "direction": "below", "on": 15, "off": 20 } ] } ] }
        """

    init(id: String, observer: String = "obs-rec", receiveDown: Bool = true) throws {
        dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)  // Mosquitto may drop to its own user and must reach the broker setup.
        warden = WardenProcess(home: dir.file("home"))
        brokerDir = dir.file("broker")
        port = try MosquittoProcess.freeLoopbackPort()
        self.id = id
        try Self.ok(try warden.run(["ca", "init", "--org", "Recorder Fleet"]), "ca init")
        try Self.ok(try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)]), "broker config")
        try Self.ok(try warden.run(["policy", "apply", try dir.write("policy.json", Self.policy(observer: observer, receiveDown: receiveDown))]), "policy apply")
        state = dir.file("state")
        let bundle = dir.file("bundle.pem")
        try Self.ok(try warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")
        try Self.ok(try Agent.run(["init", "--id", id, "--out", state, "--trust", bundle]), "agent init")
        try Self.ok(try warden.run(["device", "enroll", id, "--csr", state + "/device.csr", "--out", state + "/device.crt.pem"]), "enroll")
        config = dir.file("config.json")
        try Self.ok(try warden.run([
            "device", "config", id, "--broker", "mqtts://127.0.0.1:\(port)", "--https-url", "https://127.0.0.1:8443",
            "--pipeline", try dir.write("pipeline.json", Self.pipeline), "--out", config,
        ]), "device config")
        let keys = try DeviceKeys.make(observer, in: dir)
        observerKey = keys.key
        observerCert = dir.file("observer.crt.pem")
        try Self.ok(try warden.run(["device", "enroll", observer, "--csr", keys.csr, "--out", observerCert]), "enroll observer")
        let serveLog = dir.file("serve.log")
        let brokerPort = port
        serve = try warden.start(["serve", "--broker", brokerDir], output: serveLog)
        guard Self.waitUntil(timeout: 30, { MosquittoProcess.canConnect(port: brokerPort) && Self.text(serveLog).contains("resync") }) else {
            serve.stop()
            throw TestSupportError("serve did not become ready: \(Self.text(serveLog))")
        }
    }

    deinit {
        for process in spawned { process.stop(SIGKILL, grace: 0) }
        serve.stop()
    }

    /// The `run` arguments of the agent, with quick reconnects.
    var runArguments: [String] {
        ["run", "--config", config, "--state", state, "--initial-spread", "0", "--backoff-base", "0.2", "--backoff-cap", "1"]
    }

    /// Starts `warden-agent run` (plus `extra` arguments), logging to `log`.
    func startAgent(log: String, extra: [String] = []) throws -> SpawnedProcess {
        let agent = try SpawnedProcess(Agent.executable, runArguments + extra, output: dir.file(log))
        spawned.append(agent)
        return agent
    }

    /// Starts an observer `mosquitto_sub -v -d` on `topics`, logging to `log`; returns once it is subscribed.
    func observe(_ topics: [String], log: String) throws -> SpawnedProcess {
        var arguments = ["-oL", "-eL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", String(port), "-V", "mqttv5", "-q", "1", "-v", "-d"]
        for topic in topics { arguments += ["-t", topic] }
        arguments += ["--cafile", brokerDir + "/ca.pem", "--cert", observerCert, "--key", observerKey]
        let path = dir.file(log)
        let process = try SpawnedProcess("/usr/bin/stdbuf", arguments, output: path)
        spawned.append(process)
        guard Self.waitUntil(timeout: 10, { Self.text(path).contains("Subscribed (mid: 1)") }) else {
            throw TestSupportError("observer not subscribed: \(Self.text(path))")
        }
        return process
    }

    struct Shown: Decodable {
        let connected: Bool
    }

    /// Whether the authority sees the agent connected.
    func connected() -> Bool? {
        guard let r = try? warden.run(["device", "show", id, "--json"]), r.status == 0 else { return nil }
        return (try? JSONDecoder().decode(Shown.self, from: Data(r.stdout.utf8)))?.connected
    }

    /// `device show --json`'s `telemetry_records`: what the authority ingested from this device.
    func telemetryRecords() -> Int? {
        guard let r = try? warden.run(["device", "show", id, "--json"]), r.status == 0,
            let object = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        else { return nil }
        return object["telemetry_records"] as? Int
    }
}
