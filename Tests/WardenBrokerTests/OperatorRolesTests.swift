import Foundation
import Testing
import WardenCore
import WardenPolicy

@Suite("operator roles: built-in document, shipped file, decisions")
struct OperatorRolesTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test("policies/operators.json is valid, lint-clean and identical to the built-in roles document")
    func shipped() throws {
        let loaded = try PolicyDocument.load(path: Self.repository + "/policies/operators.json")
        #expect(loaded.map(\.document) == [OperatorRoles.document])
        #expect(PolicyLint.check([OperatorRoles.document], sources: ["operators"]) == [])
    }

    @Test("admin may every api: action; auditor only reads; release-manager firmware and rollouts; devices nothing")
    func decisions() throws {
        let set = PolicySet(documents: [PolicyDocument.builtInDefault], sources: ["default"], origin: .builtIn)
        let evaluator = OperatorRoles.evaluator(for: set)
        func allowed(_ principal: PolicyPrincipal, _ action: String, _ resource: String = "device:*") throws -> Bool {
            try evaluator.decide(principal: principal, action: action, resource: resource).allowed
        }
        for action in OperatorRoles.apiActions {
            #expect(try allowed(.role("admin"), action), "admin \(action)")
            #expect(try allowed(.role("admin"), action, "device:pump-001"), "admin \(action) on one device")
            #expect(try !allowed(.device(id: "pump-001", groups: []), action), "device \(action)")
            #expect(try !allowed(.role("nobody"), action), "unknown role \(action)")
        }
        #expect(try allowed(.role("auditor"), "api:audit.read"))
        #expect(try allowed(.role("auditor"), "api:device.list"))
        for action in ["api:device.enroll", "api:device.revoke", "api:firmware.add", "api:rollout.create", "api:policy.apply"] {
            #expect(try !allowed(.role("auditor"), action), "auditor \(action)")
        }
        #expect(try allowed(.role("release-manager"), "api:firmware.add", "firmware:edge-os"))
        #expect(try allowed(.role("release-manager"), "api:rollout.create", "firmware:edge-os"))
        #expect(try !allowed(.role("release-manager"), "api:device.enroll", "device:pump-001"))
        #expect(try !allowed(.role("release-manager"), "api:audit.read"))
    }

    @Test("a fleet document cannot grant devices an api: action, and can narrow a role with a deny")
    func fleetDocuments() throws {
        let grantDevices = try PolicyDocument.parse(Array(#"""
            {"version":1,"statements":[
              {"sid":"devices-enroll","effect":"allow","principals":["device:*"],"actions":["api:device.enroll"],"resources":["device:*"]},
              {"sid":"no-admin-revoke","effect":"deny","principals":["role:admin"],"actions":["api:device.revoke"],"resources":["device:*"]}
            ]}
            """#.utf8), source: "fleet.json")
        let evaluator = OperatorRoles.evaluator(for: PolicySet(documents: [grantDevices], sources: ["fleet.json"], origin: .builtIn))
        let device = try evaluator.decide(principal: .device(id: "pump-001", groups: []), action: "api:device.enroll", resource: "device:pump-002")
        #expect(!device.allowed)
        #expect(device.decidingStatements.contains { $0.contains("devices-no-api") }, "\(device.decidingStatements)")
        #expect(try !evaluator.decide(principal: .role("admin"), action: "api:device.revoke", resource: "device:pump-001").allowed)
        #expect(try evaluator.decide(principal: .role("admin"), action: "api:device.enroll", resource: "device:pump-001").allowed)
    }

    @Test("role names are validated; known roles include roles the fleet documents name")
    func roleNames() throws {
        for bad in ["", "Admin", "-x", "a b", String(repeating: "r", count: 41)] {
            #expect(throws: WardenError.self) { try OperatorRoles.validate(role: bad) }
        }
        try OperatorRoles.validate(role: "release-manager")
        let custom = try PolicyDocument.parse(Array(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["role:field-tech"],"actions":["api:device.list"],"resources":["device:*"]}]}"#.utf8), source: "c")
        #expect(OperatorRoles.knownRoles(in: [custom]) == ["admin", "auditor", "release-manager", "field-tech"])
    }
}
