import Foundation
import Testing
import WardenCore
import WardenTestSupport

/// `warden device config` (authority) and `warden-agent run --check` (device), both as real processes.
@Suite(.serialized) struct AgentConfigTests {
    /// A CA, an enrolled device whose state directory trusts the CA bundle, and a firmware repository.
    final class Setup: @unchecked Sendable {
        // @unchecked: immutable after init.
        let dir: TemporaryDirectory
        let warden: WardenProcess
        let state: String
        let id = "gw-0100"

        init(firmware: Bool = true) throws {
            dir = try TemporaryDirectory()
            warden = WardenProcess(home: dir.file("home"))
            state = dir.file("state")
            try Self.ok(try warden.run(["ca", "init", "--org", "Config Fleet"]), "ca init")
            if firmware { try Self.ok(try warden.run(["firmware", "keys", "init"]), "firmware keys init") }
            let bundle = dir.file("bundle.pem")
            try Self.ok(try warden.run(["ca", "bundle", "--out", bundle]), "ca bundle")
            try Self.ok(try Agent.run(["init", "--id", id, "--out", state, "--trust", bundle]), "agent init")
            try Self.ok(try warden.run(["device", "enroll", id, "--csr", state + "/device.csr", "--out", dir.file("cert.pem")]), "enroll")
        }

        static func ok(_ result: WardenProcess.Result, _ what: String) throws {
            guard result.status == 0 else { throw TestSupportError("\(what) failed (\(result.status)): \(result.stderr)") }
        }

        /// `warden device config` into `name`; returns the path.
        func config(_ name: String, pipeline: String? = nil) throws -> String {
            let out = dir.file(name)
            var arguments = ["device", "config", id, "--broker", "mqtts://127.0.0.1:8883", "--https-url", "https://127.0.0.1:8443", "--out", out]
            if let pipeline { arguments += ["--pipeline", pipeline] }
            try Self.ok(try warden.run(arguments), "device config")
            return out
        }

        func run(_ config: String, check: Bool = true) throws -> WardenProcess.Result {
            try Agent.run(["run", "--config", config, "--state", state] + (check ? ["--check"] : []))
        }

        var floor: String? { try? String(contentsOfFile: state + "/config.version", encoding: .utf8) }
    }

    @Test func aSignedConfigIsVerifiedAndVersionsOnlyGoUp() throws {
        let setup = try Setup()
        #expect(SecureFile.mode(of: setup.state + "/trust.pem") == 0o644)
        let pipeline = try setup.dir.write("pipeline.json", "{\"sensors\": {\"t\": {\"deadband\": 0.25}}}")
        let first = try setup.config("c1.json", pipeline: pipeline)
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: first))) as? [String: Any]
        let signed = try #require(document?["signed"] as? [String: Any])
        #expect(signed["version"] as? Int == 1 && signed["device_id"] as? String == setup.id)
        #expect((signed["tuf_root"] as? [String: Any])?["signed"] != nil)
        #expect((signed["trust_bundle"] as? String)?.contains("BEGIN CERTIFICATE") == true)
        #expect((signed["pipeline"] as? String)?.contains("deadband") == true)
        #expect(((document?["signature"] as? [String: Any])?["chain"] as? [String])?.count == 2)

        let accepted = try setup.run(first)
        #expect(accepted.status == 0, "\(accepted.stderr)")
        #expect(accepted.stdout.contains("config verified: device \(setup.id) version 1"))
        #expect(setup.floor == "1\n")
        // The same config again is fine (a restart); a newer one raises the floor; the older one is then refused.
        #expect(try setup.run(first).status == 0)
        let second = try setup.config("c2.json")
        #expect(try setup.run(second).status == 0)
        #expect(setup.floor == "2\n")
        let older = try setup.run(first)
        #expect(older.status == 1 && older.oneLineError && older.stderr.contains("older"), "\(older.stderr)")
        #expect(setup.floor == "2\n")
        // The audit log records every issued config.
        #expect(try setup.warden.run(["audit", "log", "--device", setup.id]).stdout.components(separatedBy: "device.config").count == 3)
        // Without --check the agent verifies, then refuses to start a session without DIR/device.crt.pem (exit 2).
        let noCertificate = try setup.run(second, check: false)
        #expect(noCertificate.status == 2 && noCertificate.stdout.contains("config verified") && noCertificate.oneLineError
            && noCertificate.stderr.contains("device.crt.pem"), "\(noCertificate.stderr)")
    }

    @Test func tamperedUnsignedAndForeignConfigsAreRefusedBeforeAnythingRuns() throws {
        let setup = try Setup(firmware: false)
        let good = try setup.config("good.json")
        let text = try String(contentsOfFile: good, encoding: .utf8)
        #expect(text.contains("\"tuf_root\": null"))

        // Tampered: another broker, same signature.
        let tampered = try setup.dir.write("tampered.json", text.replacingOccurrences(of: "mqtts://127.0.0.1:8883", with: "mqtts://evil.example:8883"))
        // Tampered: a higher version, same signature.
        let bumped = try setup.dir.write("bumped.json", text.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 9"))
        // Unsigned: the signature removed.
        var object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        object.removeValue(forKey: "signature")
        let unsigned = try setup.dir.write("unsigned.json", Array(try JSONSerialization.data(withJSONObject: object)))
        // Signed by another fleet's CA for the same device id.
        let other = try Setup(firmware: false)
        let foreign = try other.config("foreign.json")
        // Not JSON at all.
        let garbage = try setup.dir.write("garbage.json", "not json")

        for (path, message) in [
            (tampered, "does not match its signature"), (bumped, "does not match its signature"), (unsigned, "not signed"),
            (foreign, "does not trust"), (garbage, "config"), (setup.dir.file("missing.json"), "does not exist"),
        ] {
            let refused = try setup.run(path)
            #expect(refused.status == 1 && refused.oneLineError, "\(path): \(refused.stderr)")
            #expect(refused.stderr.contains(message), "\(path): \(refused.stderr)")
            #expect(!refused.stdout.contains("config verified"))
            #expect(setup.floor == nil, "a refused config must not move the floor")
        }
        #expect(try setup.run(good).status == 0)

        // A config for another device of the same fleet is refused.
        let bundle = setup.dir.file("bundle.pem")
        let neighbour = setup.dir.file("neighbour")
        try Setup.ok(try Agent.run(["init", "--id", "gw-0102", "--out", neighbour]), "init neighbour")
        try Setup.ok(try setup.warden.run(["device", "enroll", "gw-0102", "--csr", neighbour + "/device.csr", "--out", setup.dir.file("n.pem")]), "enroll")
        let forNeighbour = setup.dir.file("neighbour.json")
        try Setup.ok(try setup.warden.run([
            "device", "config", "gw-0102", "--broker", "mqtts://127.0.0.1:8883", "--https-url", "https://127.0.0.1:8443", "--out", forNeighbour,
        ]), "config neighbour")
        let misdirected = try setup.run(forNeighbour)
        #expect(misdirected.status == 1 && misdirected.oneLineError && misdirected.stderr.contains("not this device"), "\(misdirected.stderr)")
        #expect(setup.floor == "1\n")
        #expect(FileManager.default.fileExists(atPath: bundle))

        // A state directory without a trust anchor accepts nothing.
        let bare = setup.dir.file("bare")
        try Setup.ok(try Agent.run(["init", "--id", "gw-0101", "--out", bare]), "init")
        let untrusted = try Agent.run(["run", "--config", good, "--state", bare, "--check"])
        #expect(untrusted.status == 1 && untrusted.stderr.contains("trust"))
    }

    @Test func theAuthorityRefusesBadRequests() throws {
        let setup = try Setup(firmware: false)
        let out = setup.dir.file("c.json")
        let cases: [([String], Int32, String)] = [
            (["device", "config", "gw-9999", "--broker", "mqtts://h:8883", "--https-url", "https://h", "--out", out], 2, "not enrolled"),
            (["device", "config", setup.id, "--broker", "mqtt://h:1883", "--https-url", "https://h", "--out", out], 2, "--broker"),
            (["device", "config", setup.id, "--broker", "mqtts://h", "--https-url", "https://h", "--out", out], 2, "--broker"),
            (["device", "config", setup.id, "--broker", "mqtts://h:8883", "--https-url", "http://h", "--out", out], 2, "--https-url"),
            (["device", "config", "Bad!", "--broker", "mqtts://h:8883", "--https-url", "https://h", "--out", out], 2, "device id"),
        ]
        for (arguments, status, message) in cases {
            let result = try setup.warden.run(arguments)
            #expect(result.status == status && result.stderr.contains(message), "\(arguments): \(result.status) \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        try Setup.ok(try setup.warden.run(["device", "revoke", setup.id, "--reason", "keyCompromise"]), "revoke")
        let revoked = try setup.warden.run(["device", "config", setup.id, "--broker", "mqtts://h:8883", "--https-url", "https://h", "--out", out])
        #expect(revoked.status == 1 && revoked.stderr.contains("revoked"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
