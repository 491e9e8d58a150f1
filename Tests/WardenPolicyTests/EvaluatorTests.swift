import Foundation
import Testing
import WardenCore
import WardenPolicy

func policy(_ json: String, _ source: String = "p.json") throws -> PolicyDocument {
    try PolicyDocument.parse(Array(json.utf8), source: source)
}

@Suite("policy evaluator")
struct EvaluatorTests {
    let pump = PolicyPrincipal.device(id: "pump-001", groups: ["pumps"])

    func shippedEvaluator() throws -> PolicyEvaluator {
        let path = PolicyTests.repository.appendingPathComponent("policies/default.json").path
        let document = try PolicyDocument.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path)
        return PolicyEvaluator(documents: [document])
    }

    @Test("shipped default: own up/ publish and own down/ subscribe are allowed, by the right statement", arguments: [
        ("mqtt:publish", "topic:d/pump-001/up/telemetry", "device-publish-own-up"),
        ("mqtt:publish", "topic:d/pump-001/up", "device-publish-own-up"),
        ("mqtt:subscribe", "topic:d/pump-001/down/#", "device-receive-own-down"),
        ("mqtt:subscribe", "topic:d/pump-001/down/+/cmd", "device-receive-own-down"),
        ("mqtt:receive", "topic:d/pump-001/down/cmd", "device-receive-own-down"),
        ("mqtt:subscribe", "topic:warden/tuf/#", "device-read-firmware-metadata"),
        ("mqtt:receive", "topic:warden/tuf/timestamp.json", "device-read-firmware-metadata"),
    ])
    func shippedAllows(action: String, resource: String, sid: String) throws {
        let decision = try shippedEvaluator().decide(principal: pump, action: action, resource: resource)
        #expect(decision.effect == .allow)
        #expect(decision.reason == .allowedBy)
        #expect(decision.decidingStatements == [sid])
    }

    @Test("shipped default: another device's topics, #, d/+/..., $CONTROL and every api: action are denied by default", arguments: [
        ("mqtt:publish", "topic:d/pump-002/up/telemetry"),
        ("mqtt:subscribe", "topic:d/pump-002/down/#"),
        ("mqtt:receive", "topic:d/pump-002/down/cmd"),
        ("mqtt:subscribe", "topic:#"),
        ("mqtt:subscribe", "topic:d/+/down/#"),
        ("mqtt:subscribe", "topic:d/+/up/#"),
        ("mqtt:subscribe", "topic:d/pump-001/#"),
        ("mqtt:publish", "topic:d/pump-001/down/cmd"),
        ("mqtt:subscribe", "topic:d/pump-001/up/#"),
        ("mqtt:publish", "topic:$CONTROL/dynamic-security/v1"),
        ("mqtt:subscribe", "topic:$CONTROL/#"),
        ("mqtt:subscribe", "topic:$SYS/#"),
        ("mqtt:publish", "topic:warden/tuf/timestamp.json"),
        ("mqtt:subscribe", "topic:warden/#"),
        ("api:device.enroll", "device:pump-001"),
        ("api:device.revoke", "device:pump-002"),
        ("api:firmware.add", "firmware:pump-fw"),
        ("api:audit.read", "device:*"),
    ])
    func shippedDenies(action: String, resource: String) throws {
        let decision = try shippedEvaluator().decide(principal: pump, action: action, resource: resource)
        #expect(decision.effect == .deny)
        #expect(decision.reason == .defaultDeny)
        #expect(decision.decidingStatements.isEmpty)
    }

    let mixed = #"""
    {"version":1,"statements":[
      {"sid":"pumps-fleet","effect":"allow","principals":["group:pumps"],"actions":["mqtt:subscribe","mqtt:receive"],"resources":["topic:fleet/pumps/#"]},
      {"sid":"no-secrets","effect":"deny","principals":["device:*"],"actions":["mqtt:subscribe","mqtt:receive"],"resources":["topic:fleet/+/secret/#"]},
      {"sid":"parent","effect":"allow","principals":["device:*"],"actions":["mqtt:subscribe"],"resources":["topic:x"]},
      {"sid":"children","effect":"allow","principals":["device:*"],"actions":["mqtt:subscribe"],"resources":["topic:x/+/#"]},
      {"sid":"own-record","effect":"allow","principals":["device:*"],"actions":["api:device.read"],"resources":["device:${device.id}"]},
      {"sid":"enrollers","effect":"allow","principals":["role:enroller"],"actions":["api:device.enroll","api:device.revoke"],"resources":["device:*"]},
      {"sid":"keep-gw","effect":"deny","principals":["role:enroller"],"actions":["api:device.revoke"],"resources":["device:gw-001"]},
      {"sid":"auditors","effect":"allow","principals":["role:auditor"],"actions":["api:audit.read"],"resources":["device:*"]}
    ]}
    """#

    @Test("groups, explicit deny wins over a covering allow, one allow per subscription, api: on device resources, roles")
    func mixedDocument() throws {
        let evaluator = PolicyEvaluator(documents: [try policy(mixed)])
        let other = PolicyPrincipal.device(id: "gate-003", groups: ["gates"])
        func decide(_ p: PolicyPrincipal, _ a: String, _ r: String) throws -> Decision { try evaluator.decide(principal: p, action: a, resource: r) }

        // fleet/pumps/# can match fleet/pumps/secret/…, which is denied, so the whole subscription is.
        #expect(try decide(pump, "mqtt:subscribe", "topic:fleet/pumps/#").reason == .explicitDeny)
        #expect(try decide(pump, "mqtt:receive", "topic:fleet/pumps/status").allowed)
        #expect(try decide(other, "mqtt:receive", "topic:fleet/pumps/status").reason == .defaultDeny)
        let secret = try decide(pump, "mqtt:receive", "topic:fleet/pumps/secret/key")
        #expect(secret.effect == .deny && secret.reason == .explicitDeny && secret.decidingStatements == ["no-secrets"])
        // The whole tree intersects the deny, so subscribing to all of it is refused.
        let tree = try decide(pump, "mqtt:subscribe", "topic:fleet/#")
        #expect(tree.reason == .explicitDeny)
        // An allow that overlaps a deny with wildcards grants no subscription (Mosquitto cannot refuse exactly the
        // overlapping filters), though receive is still allowed topic by topic.
        let overlapped = try decide(pump, "mqtt:subscribe", "topic:fleet/pumps/status/+")
        #expect(!overlapped.allowed && overlapped.reason == .explicitDeny && overlapped.decidingStatements == ["no-secrets"])
        // A subscription needs ONE allow that contains it: x/# is covered by {x, x/+/#} only together, so refused;
        // each part is allowed.
        let union = try decide(other, "mqtt:subscribe", "topic:x/#")
        #expect(!union.allowed && union.reason == .defaultDeny)
        #expect(try decide(other, "mqtt:subscribe", "topic:x").allowed)
        #expect(try decide(other, "mqtt:subscribe", "topic:x/+/#").decidingStatements == ["children"])
        #expect(try !decide(other, "mqtt:subscribe", "topic:+/#").allowed)
        // api: actions.
        #expect(try decide(pump, "api:device.read", "device:pump-001").allowed)
        #expect(try !decide(pump, "api:device.read", "device:pump-002").allowed)
        #expect(try !decide(pump, "api:device.read", "device:*").allowed)
        let enroller = PolicyPrincipal.role("enroller")
        #expect(try decide(enroller, "api:device.enroll", "device:anything-9").allowed)
        #expect(try decide(enroller, "api:device.revoke", "device:pump-001").allowed)
        let gw = try decide(enroller, "api:device.revoke", "device:gw-001")
        #expect(gw.reason == .explicitDeny && gw.decidingStatements == ["keep-gw"])
        #expect(try decide(enroller, "api:device.revoke", "device:*").reason == .explicitDeny)
        let auditor = PolicyPrincipal.role("auditor")
        #expect(try decide(auditor, "api:audit.read", "device:*").allowed)
        #expect(try decide(auditor, "api:device.enroll", "device:abc-1").reason == .defaultDeny)
        // A role never gets device statements.
        #expect(try !decide(auditor, "mqtt:subscribe", "topic:x").allowed)
    }

    @Test("new resource and principal forms are validated")
    func resourceForms() throws {
        _ = try policy(#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["role:ops"],"actions":["api:firmware.add"],"resources":["firmware:pump-fw","firmware:*"]}]}"#)
        for bad in ["firmware:a/b", "device:bad id!", "bucket:x", "device:", "firmware:#"] {
            #expect(throws: WardenError.self) {
                try policy(#"{"version":1,"statements":[{"sid":"a","effect":"allow","principals":["role:ops"],"actions":["api:x"],"resources":["\#(bad)"]}]}"#)
            }
        }
        #expect(throws: WardenError.self) { try PolicyPrincipal.parse("group:x") }
        #expect(try PolicyPrincipal.parse("role:auditor") == .role("auditor"))
    }
}

@Suite("policy lint")
struct LintTests {
    func kinds(_ json: String) throws -> [String] {
        PolicyLint.check([try policy(json)], sources: ["p.json"]).map(\.kind)
    }

    @Test("the shipped default has no findings")
    func shippedClean() {
        #expect(PolicyLint.check([PolicyDocument.builtInDefault], sources: ["default.json"]).isEmpty)
    }

    @Test("topic:# to device:* is a cross-device grant; d/+/... too; own-tree wildcards are not")
    func crossDevice() throws {
        let findings = PolicyLint.check([try policy(#"{"version":1,"statements":[{"sid":"all","effect":"allow","principals":["device:*"],"actions":["mqtt:subscribe"],"resources":["topic:#"]}]}"#)], sources: ["wide.json"])
        #expect(findings.contains { $0.kind == "cross-device" && $0.sid == "all" && $0.source == "wide.json" })
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["group:g"],"actions":["mqtt:receive"],"resources":["topic:d/+/up/#"]}]}"#) == ["cross-device"])
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["device:*"],"actions":["mqtt:receive"],"resources":["topic:d/${device.id}/down/+/x"]}]}"#).isEmpty)
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["device:*"],"actions":["mqtt:receive"],"resources":["topic:fleet/+/status"]}]}"#).isEmpty)
    }

    @Test("$CONTROL and $SYS exposure; # alone does not match $ topics")
    func reserved() throws {
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["device:x-1"],"actions":["mqtt:publish"],"resources":["topic:$CONTROL/dynamic-security/v1"]}]}"#) == ["reserved-topic"])
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["device:x-1"],"actions":["mqtt:subscribe"],"resources":["topic:$SYS/#"]}]}"#) == ["reserved-topic"])
        #expect(try !kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["device:x-1"],"actions":["mqtt:subscribe"],"resources":["topic:#"]}]}"#).contains("reserved-topic"))
    }

    @Test("never-matching statements and shadowed allows")
    func neverAndShadowed() throws {
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["device:*"],"actions":["api:device.enroll"],"resources":["topic:a"]}]}"#) == ["never-matches"])
        #expect(try kinds(#"{"version":1,"statements":[{"sid":"s","effect":"allow","principals":["role:ops"],"actions":["api:device.read"],"resources":["device:${device.id}"]}]}"#) == ["never-matches"])
        let shadowed = #"""
        {"version":1,"statements":[
          {"sid":"up","effect":"allow","principals":["group:g"],"actions":["mqtt:publish"],"resources":["topic:d/${device.id}/up/x"]},
          {"sid":"no-up","effect":"deny","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.id}/up/#"]}
        ]}
        """#
        let findings = PolicyLint.check([try policy(shadowed)], sources: ["p.json"])
        #expect(findings.map(\.kind) == ["shadowed"])
        #expect(findings.first?.sid == "up" && findings.first?.message.contains("no-up") == true)
        let partly = shadowed.replacingOccurrences(of: "up/#\"]", with: "up/y\"]")
        #expect(try kinds(partly).isEmpty)
    }
}

@Suite("policy diff")
struct DiffTests {
    let before = #"""
    {"version":1,"statements":[
      {"sid":"own","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.id}/up/#"]},
      {"sid":"pumps","effect":"allow","principals":["group:pumps"],"actions":["mqtt:subscribe"],"resources":["topic:fleet/pumps/config"]}
    ]}
    """#

    @Test("widening a group: statement names the group and what it gains; narrowing is a loss")
    func widenGroup() throws {
        let after = before.replacingOccurrences(of: "fleet/pumps/config", with: "fleet/pumps/#")
        let changes = PolicyDiff.diff(old: [try policy(before)], new: [try policy(after)])
        #expect(changes == [PermissionChange(change: "gain", principal: "group:pumps", action: "mqtt:subscribe", resource: "topic:fleet/pumps/#", how: "allowed")])
        let back = PolicyDiff.diff(old: [try policy(after)], new: [try policy(before)])
        #expect(back == [PermissionChange(change: "loss", principal: "group:pumps", action: "mqtt:subscribe", resource: "topic:fleet/pumps/#", how: "no longer allowed")])
    }

    @Test("identical or equivalent sets have no changes; a narrower filter already covered is no gain")
    func noChange() throws {
        #expect(PolicyDiff.diff(old: [try policy(before)], new: [try policy(before)]).isEmpty)
        let split = before.replacingOccurrences(of: #""topic:d/${device.id}/up/#""#, with: #""topic:d/${device.id}/up","topic:d/${device.id}/up/+/#""#)
        #expect(PolicyDiff.diff(old: [try policy(before)], new: [try policy(split)]).isEmpty)
    }

    @Test("adding a deny is a loss; removing it a gain")
    func denies() throws {
        let denied = before.replacingOccurrences(of: "\n]}", with: #",{"sid":"d","effect":"deny","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:d/${device.id}/up/secret"]}]}"#)
        let changes = PolicyDiff.diff(old: [try policy(before)], new: [try policy(denied)])
        #expect(changes.contains(PermissionChange(change: "loss", principal: "device:*", action: "mqtt:publish", resource: "topic:d/${device.id}/up/secret", how: "denied")))
        #expect(changes.allSatisfy { $0.change == "loss" })
        let reverse = PolicyDiff.diff(old: [try policy(denied)], new: [try policy(before)])
        #expect(reverse.contains(PermissionChange(change: "gain", principal: "device:*", action: "mqtt:publish", resource: "topic:d/${device.id}/up/secret", how: "undenied")))
    }
}

@Suite("unknown fields")
struct UnknownFieldTests {
    @Test("an unknown statement field such as when is refused, naming file and statement")
    func unknownField() {
        #expect {
            try policy(#"{"version":1,"statements":[{"sid":"c","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"],"when":{"fw":"1"}}]}"#, "w.json")
        } throws: { error in
            let message = (error as? WardenError)?.message ?? ""
            return message.contains("w.json") && message.contains("'c'") && message.contains("when")
        }
    }
}
