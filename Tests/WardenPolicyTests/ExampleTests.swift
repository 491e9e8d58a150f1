import Foundation
import Testing
import WardenCore
import WardenPolicy

@Suite("shipped examples")
struct ExampleTests {
    func examples(_ name: String) -> String {
        PolicyTests.repository.appendingPathComponent("policies/examples/\(name)").path
    }

    @Test("wide-open.json: topic:# for device:* is flagged cross-device")
    func wideOpen() throws {
        let loaded = try PolicyDocument.load(path: examples("wide-open.json"))
        let findings = PolicyLint.check(loaded.map(\.document), sources: loaded.map(\.source))
        #expect(findings.contains { $0.kind == "cross-device" && $0.sid == "everything" && $0.source.hasSuffix("wide-open.json") })
    }

    @Test("pumps-before -> pumps-after: group:pumps gains fleet/pumps/#, nobody loses anything")
    func pumpsDiff() throws {
        let before = try PolicyDocument.load(path: examples("pumps-before.json")).map(\.document)
        let after = try PolicyDocument.load(path: examples("pumps-after.json")).map(\.document)
        #expect(PolicyLint.check(before, sources: ["before"]).isEmpty)
        let changes = PolicyDiff.diff(old: before, new: after)
        #expect(Set(changes.map(\.action)) == ["mqtt:subscribe", "mqtt:receive"])
        #expect(changes.allSatisfy { $0.change == "gain" && $0.principal == "group:pumps" && $0.resource == "topic:fleet/pumps/#" })
        // The devices that gain access, from a device list with groups.
        let fleet: [(id: String, groups: [String])] = [("pump-001", ["pumps"]), ("pump-002", ["pumps", "north"]), ("gate-003", ["gates"])]
        #expect(PolicyDiff.affected(principal: "group:pumps", fleet: fleet) == ["pump-001", "pump-002"])
        #expect(PolicyDiff.affected(principal: "device:*", fleet: fleet) == ["gate-003", "pump-001", "pump-002"])
        #expect(PolicyDiff.affected(principal: "device:gate-003", fleet: fleet) == ["gate-003"])
        #expect(PolicyDiff.affected(principal: "role:auditor", fleet: fleet).isEmpty)
    }

    @Test("a directory loads every *.json in name order; a missing path is bad input")
    func directory() throws {
        let loaded = try PolicyDocument.load(path: PolicyTests.repository.appendingPathComponent("policies/examples").path)
        #expect(loaded.map { URL(fileURLWithPath: $0.source).lastPathComponent } == ["groups-and-conditions.json", "pumps-after.json", "pumps-before.json", "wide-open.json"])
        #expect(throws: WardenError.self) { try PolicyDocument.load(path: "/nonexistent/policy.json") }
    }

    @Test("groups-and-conditions.json: quarantine refuses connect, group topics per group, a denied topic name under an allowed tree")
    func groupsAndConditions() throws {
        let documents = try PolicyDocument.load(path: examples("groups-and-conditions.json")).map(\.document)
        #expect(PolicyLint.check(documents, sources: ["example"]).isEmpty)
        let evaluator = PolicyEvaluator(documents: documents)
        let pump = PolicyPrincipal.device(id: "pump-001", groups: ["pumps", "north"])
        #expect(DynsecCompiler.mayConnect(deviceID: "pump-001", groups: ["pumps"], documents: documents))
        #expect(!DynsecCompiler.mayConnect(deviceID: "pump-001", groups: ["pumps", "quarantine"], documents: documents))
        #expect(try evaluator.decide(principal: pump, action: "mqtt:subscribe", resource: "topic:g/north/cmd/#").allowed)
        #expect(try !evaluator.decide(principal: pump, action: "mqtt:subscribe", resource: "topic:g/south/cmd/#").allowed)
        #expect(try evaluator.decide(principal: pump, action: "mqtt:subscribe", resource: "topic:d/pump-001/down/config").allowed)
        let tree = try evaluator.decide(principal: pump, action: "mqtt:subscribe", resource: "topic:d/pump-001/down/#")
        #expect(!tree.allowed && tree.decidingStatements == ["no-factory-secrets"])
        #expect(try evaluator.decide(principal: pump, action: "mqtt:publish", resource: "topic:reports/north/pump-001").allowed)
        #expect(try !evaluator.decide(principal: .device(id: "pump-002", groups: ["pumps"]), action: "mqtt:publish", resource: "topic:reports/north/pump-002").allowed)
    }

    @Test("roles from the example: auditors read the audit log, enrollers enroll, neither does the other's job")
    func roles() throws {
        let evaluator = PolicyEvaluator(documents: try PolicyDocument.load(path: examples("pumps-before.json")).map(\.document))
        #expect(try evaluator.decide(principal: .role("auditor"), action: "api:audit.read", resource: "device:*").allowed)
        #expect(try evaluator.decide(principal: .role("auditor"), action: "api:device.enroll", resource: "device:pump-009").reason == .defaultDeny)
        #expect(try evaluator.decide(principal: .role("enroller"), action: "api:device.enroll", resource: "device:pump-009").allowed)
        #expect(try !evaluator.decide(principal: .role("enroller"), action: "api:audit.read", resource: "device:*").allowed)
    }
}
