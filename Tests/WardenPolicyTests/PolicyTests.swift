import Foundation
import Testing
import WardenCore
import WardenPolicy

@Suite("policy documents and dynsec compilation")
struct PolicyTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func shipped() throws -> PolicyDocument {
        let path = Self.repository.appendingPathComponent("policies/default.json").path
        return try PolicyDocument.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path)
    }

    @Test("the shipped default policy compiles to own-topic ACLs and read-only firmware metadata only")
    func defaultPolicy() throws {
        let role = DynsecCompiler.role(for: "pump-001", groups: [], documents: [try shipped()])
        #expect(role.rolename == "device-pump-001")
        #expect(Set(role.acls) == [
            DynsecACL(acltype: "publishClientSend", topic: "d/pump-001/up/#", priority: 10, allow: true),
            DynsecACL(acltype: "subscribePattern", topic: "d/pump-001/down/#", priority: 10, allow: true),
            DynsecACL(acltype: "publishClientReceive", topic: "d/pump-001/down/#", priority: 10, allow: true),
            DynsecACL(acltype: "subscribePattern", topic: "warden/tuf/#", priority: 10, allow: true),
            DynsecACL(acltype: "publishClientReceive", topic: "warden/tuf/#", priority: 10, allow: true),
        ])
    }

    @Test("groups, specific devices and denies")
    func principals() throws {
        let json = #"""
        {"version":1,"statements":[
          {"sid":"pumps","effect":"allow","principals":["group:pumps"],"actions":["mqtt:publish"],"resources":["topic:fleet/pumps/${device.id}"]},
          {"sid":"one","effect":"allow","principals":["device:gate-003"],"actions":["mqtt:receive"],"resources":["topic:fleet/gates/#"]},
          {"sid":"no-secret","effect":"deny","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.id}/up/secret"]}
        ]}
        """#
        let document = try PolicyDocument.parse(Array(json.utf8), source: "p.json")
        let pump = DynsecCompiler.role(for: "pump-001", groups: ["pumps"], documents: [document])
        #expect(pump.acls.contains(DynsecACL(acltype: "publishClientSend", topic: "fleet/pumps/pump-001", priority: 10, allow: true)))
        #expect(pump.acls.contains(DynsecACL(acltype: "publishClientSend", topic: "d/pump-001/up/secret", priority: 100, allow: false)))
        #expect(!pump.acls.contains { $0.topic == "fleet/gates/#" })
        let gate = DynsecCompiler.role(for: "gate-003", groups: [], documents: [document])
        #expect(gate.acls.contains { $0.topic == "fleet/gates/#" && $0.acltype == "publishClientReceive" })
        #expect(!gate.acls.contains { $0.topic.hasPrefix("fleet/pumps") })
    }

    @Test("bad documents are refused, naming file and statement", arguments: [
        (#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.name}/up"]}]}"#, "unknown variable"),
        (#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["device:*"],"actions":["mqtt:fly"],"resources":["topic:x"]}]}"#, "unknown action"),
        (#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["user:bob"],"actions":["mqtt:publish"],"resources":["topic:x"]}]}"#, "unknown principal"),
        (#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:a/#/b"]}]}"#, "'#'"),
        (#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:a/b+"]}]}"#, "'+'"),
        (#"{"version":1,"statements":[{"sid":"a","effect":"maybe","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"]}]}"#, "not a valid policy"),
        (#"{"version":2,"statements":[]}"#, "version"),
        (#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"]},{"sid":"a","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:y"]}]}"#, "repeated"),
    ])
    func refused(json: String, mentions: String) {
        #expect {
            try PolicyDocument.parse(Array(json.utf8), source: "bad.json")
        } throws: { error in
            guard let error = error as? WardenError else { return false }
            return error.message.contains(mentions) && error.message.contains("bad.json")
        }
    }
}

@Suite("shipped policy")
struct ShippedPolicyTests {
    @Test("the built-in default is policies/default.json")
    func builtInMatchesShipped() throws {
        let path = PolicyTests.repository.appendingPathComponent("policies/default.json").path
        let shipped = try PolicyDocument.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path)
        #expect(shipped == PolicyDocument.builtInDefault)
    }
}
