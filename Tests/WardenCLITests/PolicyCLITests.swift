import Foundation
import Testing
import WardenTestSupport

@Suite("warden policy explain / check / diff")
struct PolicyCLITests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    func policy(_ name: String) -> String { Self.repository + "/policies/" + name }

    @Test("explain: own up/ allowed by the deciding statement, another device's topic and api: calls denied by default")
    func explain() throws {
        let fleet = try Fleet(initCA: false)
        let own = try fleet.run(
            "policy", "explain", "--principal", "device:pump-001", "--action", "mqtt:publish",
            "--resource", "topic:d/pump-001/up/telemetry", "--policy", policy("default.json"), "--json")
        #expect(own.status == 0, "\(own.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(own.stdout.utf8)) as? [String: Any]
        #expect(object?["decision"] as? String == "allow")
        #expect(object?["statements"] as? [String] == ["device-publish-own-up"])
        for (action, resource) in [
            ("mqtt:publish", "topic:d/pump-002/up/telemetry"), ("mqtt:subscribe", "topic:#"), ("mqtt:subscribe", "topic:d/+/down/#"),
            ("mqtt:publish", "topic:$CONTROL/dynamic-security/v1"), ("api:device.enroll", "device:pump-002"),
        ] {
            let denied = try fleet.run(
                "policy", "explain", "--principal", "device:pump-001", "--action", action, "--resource", resource,
                "--policy", policy("default.json"), "--json")
            let decision = try JSONSerialization.jsonObject(with: Data(denied.stdout.utf8)) as? [String: Any]
            #expect(decision?["decision"] as? String == "deny", "\(action) \(resource): \(denied.stdout)")
        }
    }

    @Test("check warns on topic:# for device:*, passes the shipped default, and refuses a broken file")
    func check() throws {
        let fleet = try Fleet(initCA: false)
        let wide = try fleet.run("policy", "check", policy("examples/wide-open.json"))
        #expect(wide.status == 0)
        #expect(wide.combined.contains("cross-device"))
        #expect(try fleet.run("policy", "check", policy("examples/wide-open.json"), "--strict").status == 1)
        let clean = try fleet.run("policy", "check", policy("default.json"), "--strict")
        #expect(clean.status == 0, "\(clean.combined)")
        let broken = try fleet.dir.write("broken.json", #"{"version":1,"statements":[{"sid":"x","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.nme}/up"]}]}"#)
        let refused = try fleet.run("policy", "check", broken)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("broken.json") && refused.stderr.contains("'x'"))
    }

    @Test("diff names the devices that gain access when a group statement is widened")
    func diff() throws {
        let fleet = try Fleet(initCA: false)
        let result = try fleet.run(
            "policy", "diff", policy("examples/pumps-before.json"), policy("examples/pumps-after.json"),
            "--devices", policy("examples/devices.txt"))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("group:pumps gains"))
        #expect(result.stdout.contains("pump-001") && result.stdout.contains("pump-002"))
        #expect(!result.stdout.contains("gate-003"), "gate-003 is not in group pumps")
        let narrowed = try fleet.run("policy", "diff", policy("examples/pumps-after.json"), policy("examples/pumps-before.json"))
        #expect(narrowed.status == 0, "\(narrowed.stderr)")
        #expect(narrowed.stdout.contains("- group:pumps loses"), "\(narrowed.stdout)")
        let none = try fleet.run("policy", "diff", policy("default.json"), policy("default.json"))
        #expect(none.status == 0)
        #expect(!none.stdout.contains("gains") && !none.stdout.contains("loses"))
    }
}
