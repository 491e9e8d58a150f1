import Foundation
import Testing
import WardenTestSupport

@Suite("warden policy apply / history / rollback")
struct PolicyVersionCLITests {
    static let narrow = """
        {"version": 1, "statements": [
          {"sid": "connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"],
           "resources": ["client:${device.id}"]},
          {"sid": "publish-telemetry-only", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"],
           "resources": ["topic:d/${device.id}/up/telemetry"]}
        ]}
        """

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

    func explain(_ fleet: Fleet, _ topic: String) throws -> String? {
        let result = try fleet.run(
            "policy", "explain", "--principal", "device:pump-001", "--action", "mqtt:publish", "--resource", "topic:" + topic, "--json")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return object?["decision"] as? String
    }

    func history(_ fleet: Fleet) throws -> [[String: Any]] {
        let result = try fleet.run("policy", "history", "--json")
        #expect(result.status == 0, "\(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    }

    @Test("apply stores numbered, audited versions; identical content stores nothing; rollback re-activates as a new version")
    func applyHistoryRollback() throws {
        let fleet = try Fleet()
        let wide = try fleet.dir.write("wide.json", Self.wide)
        let narrowDir = fleet.dir.file("narrow")
        try FileManager.default.createDirectory(atPath: narrowDir, withIntermediateDirectories: true)
        _ = try fleet.dir.write("narrow/fleet.json", Self.narrow)
        // Nothing stored: explain uses the built-in default (own up/ tree allowed).
        #expect(try explain(fleet, "d/pump-001/up/events") == "allow")
        // explain's default set also holds the operator roles the admin API enforces.
        for (principal, action, decision) in [
            ("role:auditor", "api:audit.read", "allow"), ("role:auditor", "api:device.enroll", "deny"),
            ("device:pump-001", "api:audit.read", "deny"),
        ] {
            let result = try fleet.run("policy", "explain", "--principal", principal, "--action", action, "--resource", "device:*", "--json")
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            #expect(object?["decision"] as? String == decision, "\(principal) \(action): \(result.combined)")
        }

        let first = try fleet.run("policy", "apply", wide)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("stored policy version 1"))
        let second = try fleet.run("policy", "apply", narrowDir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("stored policy version 2"))
        #expect(second.stdout.contains("- device:* loses mqtt:publish"), "\(second.stdout)")
        // The active version decides explain by default.
        #expect(try explain(fleet, "d/pump-001/up/events") == "deny")
        #expect(try explain(fleet, "d/pump-001/up/telemetry") == "allow")

        // Identical content: no version, no audit event.
        let events = try fleet.count("audit_events")
        let again = try fleet.run("policy", "apply", narrowDir)
        #expect(again.status == 0)
        #expect(again.stdout.contains("unchanged"), "\(again.stdout)")
        #expect(try fleet.count("policy_versions") == 2)
        #expect(try fleet.count("audit_events") == events)

        var versions = try history(fleet)
        #expect(versions.map { $0["version"] as? Int } == [1, 2])
        #expect(versions.map { $0["active"] as? Bool } == [false, true])
        #expect(versions.map { $0["statements"] as? Int } == [3, 2])
        let digest1 = try #require(versions[0]["digest"] as? String)
        #expect(digest1.count == 64)

        let rolled = try fleet.run("policy", "rollback", "1")
        #expect(rolled.status == 0, "\(rolled.stderr)")
        #expect(rolled.stdout.contains("stored policy version 3"))
        versions = try history(fleet)
        #expect(versions.count == 3)
        #expect(versions[2]["digest"] as? String == digest1)
        #expect(versions[2]["active"] as? Bool == true)
        #expect((versions[2]["origin"] as? String)?.contains("rollback to 1") == true)
        #expect(try explain(fleet, "d/pump-001/up/events") == "allow")
        // Rolling back to what is already active is a no-op.
        #expect(try fleet.run("policy", "rollback", "3").stdout.contains("unchanged"))
        #expect(try fleet.count("policy_versions") == 3)

        // Audit: one event per stored version, with version, digest and the permission changes.
        let audit = try fleet.run("audit", "log", "--json")
        let list = try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]] ?? []
        let policyEvents = list.filter { ($0["action"] as? String)?.hasPrefix("policy.") == true }
        #expect(policyEvents.map { $0["action"] as? String } == ["policy.apply", "policy.apply", "policy.rollback"])
        let details = policyEvents[1]["details"] as? String ?? ""
        #expect(details.contains("\"version\":\"2\"") && details.contains("losses") && details.contains("up/#"), "\(details)")
        #expect(try fleet.run("audit", "verify").status == 0)
    }

    @Test(
        "bad input: an invalid document exits 2 naming file and statement, and stores no version and no audit event",
        arguments: [
            ("unknown-variable", #"{"version":1,"statements":[{"sid":"bad-var","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.name}/up/#"]}]}"#, "bad-var"),
            ("bad-filter", #"{"version":1,"statements":[{"sid":"bad-hash","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/#/up"]}]}"#, "bad-hash"),
            ("unknown-field", #"{"version":1,"statements":[{"sid":"with-when","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"],"when":{}}]}"#, "with-when"),
            ("not-json", "{ this is not json", "not-json"),
        ])
    func badInput(name: String, text: String, named: String) throws {
        let fleet = try Fleet()
        let good = try fleet.dir.write("good.json", Self.wide)
        let dir = fleet.dir.file("set-\(name)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = try fleet.dir.write("set-\(name)/a-good.json", Self.narrow)
        let badFile = try fleet.dir.write("set-\(name)/\(name).json", text)
        let events = try fleet.count("audit_events")
        for path in [badFile, dir] {
            let result = try fleet.run("policy", "apply", path)
            #expect(result.status == 2, "\(path): \(result.combined)")
            #expect(result.oneLineError, "\(result.stderr)")
            #expect(result.stderr.contains("\(name).json"), "names the file: \(result.stderr)")
            #expect(result.stderr.contains(named), "names the statement: \(result.stderr)")
        }
        #expect(try fleet.count("policy_versions") == 0)
        #expect(try fleet.count("policy_documents") == 0)
        #expect(try fleet.count("audit_events") == events)
        // Missing path, unknown version.
        #expect(try fleet.run("policy", "apply", fleet.dir.file("missing.json")).status == 2)
        #expect(try fleet.run("policy", "rollback", "7").status == 2)
        #expect(try fleet.run("policy", "rollback", "0").status == 64)
        // A good apply still works afterwards.
        #expect(try fleet.run("policy", "apply", good).status == 0)
        #expect(try fleet.count("policy_versions") == 1)
    }

    @Test("a stored version this build cannot read fails closed (explain exit 2 naming it) and a new apply repairs it")
    func unreadableStoredVersion() throws {
        let fleet = try Fleet()
        let wide = try fleet.dir.write("wide.json", Self.wide)
        let narrow = try fleet.dir.write("narrow.json", Self.narrow)
        #expect(try fleet.run("policy", "apply", wide).status == 0)
        let corrupted = try WardenProcess.launch("sqlite3", [fleet.registry, "UPDATE policy_documents SET bytes = X'7b7b' WHERE version = 1;"])
        #expect(corrupted.status == 0, "\(corrupted.stderr)")
        let explained = try fleet.run(
            "policy", "explain", "--principal", "device:pump-001", "--action", "mqtt:publish", "--resource", "topic:d/pump-001/up/x")
        #expect(explained.status == 2, "\(explained.combined)")
        #expect(explained.stderr.contains("policy v1/wide.json"), "\(explained.stderr)")
        let repaired = try fleet.run("policy", "apply", narrow)
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(try explain(fleet, "d/pump-001/up/telemetry") == "allow")
    }
}
