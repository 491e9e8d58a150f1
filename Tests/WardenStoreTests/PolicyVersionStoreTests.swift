import Foundation
import Testing
import WardenCore
import WardenStore
import WardenTestSupport

@Suite("policy versions and operator certificates in the registry")
struct PolicyVersionStoreTests {
    let a = StoredPolicyDocument(name: "a.json", bytes: Array(#"{"version":1,"statements":[]}"#.utf8))
    let b = StoredPolicyDocument(name: "b.json", bytes: Array(#"{"version":1,"statements":[{"sid":"x"}]}"#.utf8))

    func store(_ registry: Registry, _ documents: [StoredPolicyDocument], statements: Int = 1) throws -> Registry.PolicyStoreOutcome {
        try registry.storePolicyVersion(
            documents, statements: statements, origin: "test", action: "policy.apply", details: ["gains": "0"], actor: "t", now: Date())
    }

    @Test("versions are numbered, the newest is active, identical content stores nothing, and each version is audited")
    func versions() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        #expect(try registry.activePolicyVersion() == nil)
        #expect(try registry.activePolicyNumber() == 0)
        guard case .stored(let first) = try store(registry, [a]) else { Issue.record("not stored"); return }
        #expect(first.version == 1)
        #expect(first.digest == Registry.policyDigest([a]))
        // Same bytes under another name: the digest ignores names, so nothing is stored.
        let renamed = StoredPolicyDocument(name: "renamed.json", bytes: a.bytes)
        guard case .unchanged(let same) = try store(registry, [renamed]) else { Issue.record("stored a duplicate"); return }
        #expect(same.version == 1)
        guard case .stored(let second) = try store(registry, [a, b], statements: 2) else { Issue.record("not stored"); return }
        #expect(second.version == 2)
        #expect(second.digest != first.digest)
        #expect(try registry.activePolicyNumber() == 2)
        #expect(try registry.policyVersions().map(\.version) == [1, 2])
        #expect(try registry.policyVersions()[1].documents == ["a.json", "b.json"])
        #expect(try registry.policyDocuments(version: 2) == [a, b])
        #expect(throws: WardenError.self) { try registry.policyDocuments(version: 9) }
        // Back to version 1's content: a new version 3 with version 1's digest.
        guard case .stored(let third) = try store(registry, try registry.policyDocuments(version: 1)) else { Issue.record("not stored"); return }
        #expect(third.version == 3 && third.digest == first.digest)
        let events = try registry.auditEvents().filter { $0.action == "policy.apply" }
        #expect(events.count == 3)
        #expect(events.last?.details.contains("\"version\":\"3\"") == true)
        #expect(events.last?.details.contains(first.digest) == true)
        #expect(try registry.verifyAudit() == .intact(events: 3, head: try registry.auditEvents().last!.hash))
        #expect(throws: WardenError.self) { try self.store(registry, []) }
    }

    @Test("operator certificates: recorded with their role, revocation is audited and listed with the device revocations")
    func operators() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        try registry.recordOperatorCertificate(
            name: "warden-op-alice", role: "auditor", serial: "0a", der: [0x30, 0x01], notBefore: Date(),
            notAfter: Date().addingTimeInterval(3600), actor: "t", now: Date())
        #expect(throws: WardenError.self) {
            try registry.recordOperatorCertificate(
                name: "warden-op-alice", role: "auditor", serial: "0a", der: [0x30, 0x02], notBefore: Date(),
                notAfter: Date().addingTimeInterval(3600), actor: "t", now: Date())
        }
        // The schema refuses a CN without the reserved prefix.
        #expect(throws: WardenError.self) {
            try registry.recordOperatorCertificate(
                name: "alice", role: "auditor", serial: "0b", der: [0x30, 0x03], notBefore: Date(),
                notAfter: Date().addingTimeInterval(3600), actor: "t", now: Date())
        }
        #expect(try registry.operatorCertificate(serial: "0a")?.role == "auditor")
        #expect(try registry.operatorCertificate(serial: "0a")?.revokedAt == nil)
        var published: [RevocationEntry] = []
        let revocation = try registry.revokeOperator(name: "warden-op-alice", reasonCode: 1, actor: "t", now: Date()) { _, entries in
            published = entries
        }
        #expect(revocation.serials == ["0a"])
        #expect(published.map(\.serial) == ["0a"])
        #expect(try registry.revocations().map(\.serial) == ["0a"])
        #expect(try registry.operatorCertificate(serial: "0a")?.revokedAt != nil)
        #expect(throws: WardenError.self) {
            try registry.revokeOperator(name: "warden-op-alice", reasonCode: 1, actor: "t", now: Date()) { _, _ in }
        }
        #expect(try registry.auditEvents().map(\.action) == ["operator.issue", "operator.revoke"])
    }
}
