import Foundation
import Testing
import WardenCore
@testable import WardenStore
import WardenTestSupport

@Suite("registry and audit chain")
struct RegistryTests {
    func enrollment(_ id: String, serial: String, key: String = "k") throws -> Enrollment {
        Enrollment(
            deviceID: try DeviceID(id), groups: ["b", "a", "a"], serial: serial, der: [0x30, 0x00], notBefore: Date(),
            notAfter: Date().addingTimeInterval(86_400), publicKeyFingerprint: key + id, sha256: "sha-" + serial)
    }

    @Test("enroll is idempotent for the same key, a conflict for another, and serials are unique")
    func enrollOutcomes() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        #expect(try registry.record([try enrollment("dev-one", serial: "01")], actor: "t", now: Date()) == [.enrolled])
        #expect(try registry.record([try enrollment("dev-one", serial: "02")], actor: "t", now: Date()) == [.alreadyEnrolledWithSameKey(serial: "01")])
        #expect(try registry.record([try enrollment("dev-one", serial: "03", key: "other")], actor: "t", now: Date()).first.map {
            if case .conflict = $0 { return true } else { return false }
        } == true)
        #expect(try registry.record([try enrollment("dev-two", serial: "01")], actor: "t", now: Date()) == [.serialCollision])
        #expect(try registry.device("dev-two") == nil, "a serial collision leaves no device row behind")
        // In one transaction: the collision is undone, the rows around it are recorded.
        #expect(try registry.record([
            try enrollment("dev-three", serial: "03"), try enrollment("dev-four", serial: "01"), try enrollment("dev-five", serial: "05"),
        ], actor: "t", now: Date()) == [.enrolled, .serialCollision, .enrolled])
        #expect(try registry.device("dev-four") == nil && registry.device("dev-three") != nil && registry.device("dev-five") != nil)
        #expect(try registry.certificateCount() == 3)
        #expect(try registry.device("dev-one")?.groups == ["a", "b"])
    }

    @Test("revocation rolls back when publishing the CRL fails")
    func revokeRollsBack() throws {
        let dir = try TemporaryDirectory()
        let registry = try Registry(path: dir.file("r.sqlite"))
        _ = try registry.record([try enrollment("dev-one", serial: "0a")], actor: "t", now: Date())
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try registry.revoke(try DeviceID("dev-one"), reasonCode: 1, actor: "t", now: Date()) { _, _ in throw Boom() }
        }
        #expect(try registry.device("dev-one")?.status == .active)
        #expect(try registry.lastCRLNumber() == 0)
        let result = try registry.revoke(try DeviceID("dev-one"), reasonCode: 1, actor: "t", now: Date()) { number, entries in
            #expect(number == 1)
            #expect(entries.map(\.serial) == ["0a"])
        }
        #expect(result.crlNumber == 1)
        #expect(try registry.device("dev-one")?.status == .revoked)
        #expect(throws: WardenError.alreadyExists("")) {
            try registry.revoke(try DeviceID("dev-one"), reasonCode: 1, actor: "t", now: Date()) { _, _ in }
        }
        // A revoked id is never reissued.
        let again = try registry.record([try enrollment("dev-one", serial: "0b")], actor: "t", now: Date())
        #expect(again.first.map { if case .conflict = $0 { return true } else { return false } } == true)
    }

    @Test("audit verify detects an edited, a deleted, a reordered and a truncated event")
    func auditTamper() throws {
        for tamper in ["UPDATE audit_events SET details = '{\"serial\":\"ff\"}' WHERE seq = 2",
                       "DELETE FROM audit_events WHERE seq = 2",
                       "UPDATE audit_events SET seq = seq + 100 WHERE seq = 2; UPDATE audit_events SET seq = 2 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 102",
                       "DELETE FROM audit_events WHERE seq = 3"] {
            let dir = try TemporaryDirectory()
            let path = dir.file("r.sqlite")
            do {
                let registry = try Registry(path: path)
                for index in 1...3 {
                    _ = try registry.record([try enrollment("dev-\(index)00", serial: "0\(index)")], actor: "t", now: Date())
                }
                guard case .intact(3, _) = try registry.verifyAudit() else {
                    Issue.record("fresh chain must verify")
                    return
                }
            }
            let edited = try WardenProcess.launch("sqlite3", [path, tamper])
            #expect(edited.status == 0, "\(edited.stderr)")
            let registry = try Registry(path: path)
            guard case .broken(let seq, let reason) = try registry.verifyAudit() else {
                Issue.record("tampering not detected: \(tamper)")
                continue
            }
            #expect(seq == (tamper.hasSuffix("seq = 3") ? 3 : 2), "\(tamper): \(reason)")
        }
    }
}

@Suite("audit chain encoding")
struct AuditEncodingTests {
    @Test("the hash input and canonical details keep their exact bytes (known answers)")
    func knownAnswers() {
        let input = AuditEvent.hashInput(
            seq: 1234, timestamp: "2026-11-25T08:00:00.123Z", actor: "cli:root", action: "device.enroll", deviceID: nil,
            details: "{\"a\":\"é\"}", previousHash: String(repeating: "0", count: 64))
        let expected = "warden-audit-v1\n4:1234\n24:2026-11-25T08:00:00.123Z\n8:cli:root\n13:device.enroll\n1:\u{0}\n10:{\"a\":\"é\"}\n64:"
            + String(repeating: "0", count: 64)
        #expect(input == Array(expected.utf8))
        #expect(AuditEvent.hashInput(seq: 7, timestamp: "", actor: "", action: "", deviceID: "d", details: "", previousHash: "")
            == Array("warden-audit-v1\n1:7\n0:\n0:\n0:\n1:d\n0:\n0:".utf8))
        #expect(CanonicalJSON.encode([:]) == "{}")
        #expect(CanonicalJSON.encode(["serial": "0a", "groups": "", "b\"q": "x\ny\u{1}"]) == #"{"b\"q":"x\ny\u0001","groups":"","serial":"0a"}"#)
    }
}
