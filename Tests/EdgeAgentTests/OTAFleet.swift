import Foundation
import WardenCore
import WardenPKI
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// An authority (`warden serve` + Mosquitto on 127.0.0.1) with a firmware repository, and helpers to enroll
/// `warden-agent` devices, add firmware, create rollouts and look at a device's A/B slots, for the OTA tests.
final class OTAFleet: ProcessTestHelpers {
    let dir: TemporaryDirectory
    let warden: WardenProcess
    let brokerDir: String
    let port: Int
    let serveLog: String
    /// `https://127.0.0.1:<port>` of serve's HTTPS listener, when started with one.
    let httpsURL: String?
    private var serve: SpawnedProcess?
    private var others: [SpawnedProcess] = []

    /// Creates the CA, the broker setup (with `policy` if given), the firmware keys, and starts `serve`.
    init(policy: String? = nil, https: Bool = false) throws {
        dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)  // Mosquitto may drop to its own user and must reach the broker setup.
        warden = WardenProcess(home: dir.file("home"))
        brokerDir = dir.file("broker")
        port = try MosquittoProcess.freeLoopbackPort()
        try Self.ok(try warden.run(["ca", "init", "--org", "OTA Fleet"]), "ca init")
        try Self.ok(try warden.run(["broker", "config", "--out", brokerDir, "--port", String(port)]), "broker config")
        if let policy { try Self.ok(try warden.run(["policy", "apply", try dir.write("policy.json", policy)]), "policy apply") }
        try Self.ok(try warden.run(["firmware", "keys", "init"]), "firmware keys init")
        try Self.ok(try warden.run(["ca", "bundle", "--out", dir.file("bundle.pem")]), "ca bundle")
        serveLog = dir.file("serve.log")
        let httpsPort = https ? try MosquittoProcess.freeLoopbackPort() : nil
        httpsURL = httpsPort.map { "https://127.0.0.1:\($0)" }
        serve = try warden.start(["serve", "--broker", brokerDir] + (httpsPort.map { ["--https-port", String($0)] } ?? []), output: serveLog)
        guard Self.waitUntil(timeout: 30, { MosquittoProcess.canConnect(port: self.port) && Self.text(self.serveLog).contains("assignment publisher connected") }) else {
            throw TestSupportError("serve not ready: \(Self.text(serveLog).suffix(2000))")
        }
    }

    deinit {
        for process in others { process.stop(SIGKILL, grace: 0) }
        serve?.stop()
    }

    /// Keeps `process` to be killed (by PID) when the fleet goes away.
    func own(_ process: SpawnedProcess) { others.append(process) }

    /// A device running `warden-agent`: its state directory, signed config and log.
    struct Device {
        let id: String
        let state: String
        let config: String
        var arguments: [String] { ["run", "--config", config, "--state", state, "--initial-spread", "0", "--backoff-base", "0.2", "--backoff-cap", "1"] }
    }

    /// `warden-agent init`, `device enroll --group`, `device config` with the OTA fields.
    func enroll(_ id: String, group: String, hardware: String?, healthCheck: String? = nil, brokerPort: Int? = nil) throws -> Device {
        let state = dir.file("state-\(id)")
        try Self.ok(try Agent.run(["init", "--id", id, "--out", state, "--trust", dir.file("bundle.pem")]), "agent init")
        try Self.ok(try warden.run(["device", "enroll", id, "--csr", state + "/device.csr", "--out", state + "/device.crt.pem", "--group", group]), "enroll")
        let config = dir.file("config-\(id).json")
        var arguments = [
            "device", "config", id, "--broker", "mqtts://127.0.0.1:\(brokerPort ?? port)", "--https-url", httpsURL ?? "https://127.0.0.1:9",
            "--out", config,
        ]
        if let hardware { arguments += ["--hardware", hardware] }
        if let healthCheck { arguments += ["--health-check", healthCheck, "--health-timeout", "20"] }
        try Self.ok(try warden.run(arguments), "device config")
        return Device(id: id, state: state, config: config)
    }

    /// Starts the agent of `device`, logging to `log`.
    func start(_ device: Device, log: String) throws -> SpawnedProcess {
        let process = try SpawnedProcess(Agent.executable, device.arguments, output: log)
        own(process)
        return process
    }

    /// `warden firmware add` of `bytes`; returns the image path and its SHA-256 (hex).
    @discardableResult
    func addFirmware(_ bytes: [UInt8], name: String, version: String, hardware: String, blockSize: String = "64KiB") throws -> (path: String, sha256: String) {
        let path = try dir.write("\(name)-\(version).bin", bytes)
        try Self.ok(try warden.run([
            "firmware", "add", path, "--name", name, "--version", version, "--hardware", hardware, "--block-size", blockSize,
        ]), "firmware add \(name)@\(version)")
        return (path, Digest.hex(Digest.sha256(bytes)))
    }

    /// `warden rollout create --target T --group G --waves 100 --json`; returns the rollout id.
    func createRollout(_ target: String, group: String) throws -> Int {
        let result = try warden.run(["rollout", "create", "--target", target, "--group", group, "--waves", "100", "--json"])
        try Self.ok(result, "rollout create \(target)")
        guard let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
            let rollout = object["rollout"] as? [String: Any], let id = rollout["id"] as? Int
        else { throw TestSupportError("rollout create printed no id: \(result.stdout)") }
        return id
    }

    /// `warden rollout status ID --json`: the device counts and failure reasons.
    func rolloutStatus(_ id: Int) -> (counts: [String: Int], reasons: [String: Int]) {
        guard let result = try? warden.run(["rollout", "status", String(id), "--json"]), result.status == 0,
            let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        else { return ([:], [:]) }
        return ((object["counts"] as? [String: Int]) ?? [:], (object["failureReasons"] as? [String: Int]) ?? [:])
    }

    /// Waits until rollout `id` shows `count` devices in `state`.
    func waitForRollout(_ id: Int, _ state: String, count: Int = 1, timeout: TimeInterval = 40) -> Bool {
        Self.waitUntil(timeout: timeout) { rolloutStatus(id).counts[state] == count }
    }

    /// The bytes of the active slot's image of `device` (nil before the first commit).
    static func activeImage(_ device: Device) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: device.state + "/slots/boot.json"),
            let boot = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let active = boot["active"] as? String
        else { return nil }
        return FileManager.default.contents(atPath: device.state + "/slots/\(active)/image").map(Array.init)
    }

    /// The OTA job file of `device`.
    static func job(_ device: Device) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: device.state + "/ota/job.json") else { return nil }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["job"] as? [String: Any]
    }

    /// Deterministic pseudo-random bytes (a firmware image).
    static func image(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }
}
