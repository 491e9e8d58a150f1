import Foundation
import Testing
import WardenCore
import WardenPolicy

@Suite("policy language: connect, variables, conditions")
struct LanguageTests {
    func refusal(_ json: String) -> String? {
        do {
            _ = try policy(json, "lang.json")
            return nil
        } catch let error as WardenError {
            return "\(error)"
        } catch {
            return "\(error)"
        }
    }

    @Test("mqtt:connect: the default lets a device connect as itself only; without an allow no device may connect")
    func connect() throws {
        let shipped = PolicyEvaluator(documents: [PolicyDocument.builtInDefault])
        let pump = PolicyPrincipal.device(id: "pump-001", groups: [])
        let own = try shipped.decide(principal: pump, action: "mqtt:connect", resource: "client:pump-001")
        #expect(own.allowed && own.decidingStatements == ["device-connect-self"])
        #expect(try !shipped.decide(principal: pump, action: "mqtt:connect", resource: "client:pump-002").allowed)
        #expect(DynsecCompiler.mayConnect(deviceID: "pump-001", groups: [], documents: [PolicyDocument.builtInDefault]))
        let noConnect = try policy(#"{"version":1,"statements":[{"sid":"p","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"]}]}"#)
        #expect(!DynsecCompiler.mayConnect(deviceID: "pump-001", groups: [], documents: [noConnect]))
        let quarantine = try policy(#"""
            {"version":1,"statements":[
              {"sid":"all","effect":"allow","principals":["device:*"],"actions":["mqtt:connect"],"resources":["client:*"]},
              {"sid":"quarantined","effect":"deny","principals":["group:quarantine"],"actions":["mqtt:connect"],"resources":["client:${device.id}"]}
            ]}
            """#)
        #expect(DynsecCompiler.mayConnect(deviceID: "pump-001", groups: ["pumps"], documents: [quarantine]))
        #expect(!DynsecCompiler.mayConnect(deviceID: "pump-001", groups: ["pumps", "quarantine"], documents: [quarantine]))
        let denied = try PolicyEvaluator(documents: [quarantine]).decide(
            principal: .device(id: "pump-001", groups: ["quarantine"]), action: "mqtt:connect", resource: "client:pump-001")
        #expect(denied.reason == .explicitDeny && denied.decidingStatements == ["quarantined"])
        // connect applies to client: resources only.
        #expect(refusal(#"{"version":1,"statements":[{"sid":"c","effect":"allow","principals":["device:*"],"actions":["mqtt:connect"],"resources":["client:a/b"]}]}"#) != nil)
        let lint = PolicyLint.check(
            [try policy(#"{"version":1,"statements":[{"sid":"c","effect":"allow","principals":["device:*"],"actions":["mqtt:connect"],"resources":["topic:x"]}]}"#)],
            sources: ["c.json"])
        #expect(lint.map(\.kind) == ["never-matches"])
    }

    @Test("${device.groups} expands to one resource per group; ${cert.cn} is the device id")
    func variables() throws {
        let document = try policy(#"""
            {"version":1,"statements":[
              {"sid":"group-cmd","effect":"allow","principals":["device:*"],"actions":["mqtt:subscribe","mqtt:receive"],"resources":["topic:g/${device.groups}/cmd/#"]},
              {"sid":"cn","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:c/${cert.cn}/up"]}
            ]}
            """#)
        let evaluator = PolicyEvaluator(documents: [document])
        let pump = PolicyPrincipal.device(id: "pump-001", groups: ["pumps", "north"])
        #expect(try evaluator.decide(principal: pump, action: "mqtt:receive", resource: "topic:g/pumps/cmd/x").allowed)
        #expect(try evaluator.decide(principal: pump, action: "mqtt:subscribe", resource: "topic:g/north/cmd/#").allowed)
        #expect(try !evaluator.decide(principal: pump, action: "mqtt:receive", resource: "topic:g/gates/cmd/x").allowed)
        #expect(try !evaluator.decide(principal: .device(id: "pump-001", groups: []), action: "mqtt:receive", resource: "topic:g/pumps/cmd").allowed)
        #expect(try evaluator.decide(principal: pump, action: "mqtt:publish", resource: "topic:c/pump-001/up").allowed)
        #expect(!evaluator.allows(device: "pump-001", groups: [], action: "mqtt:publish", name: "c/pump-002/up"))
        let role = DynsecCompiler.role(for: "pump-001", groups: ["pumps", "north", "bad/group"], documents: [document])
        #expect(Set(role.acls.filter { $0.acltype == "publishClientReceive" }.map(\.topic)) == ["g/pumps/cmd/#", "g/north/cmd/#"])
        #expect(role.acls.contains(DynsecACL(acltype: "publishClientSend", topic: "c/pump-001/up", priority: 10, allow: true)))
        // Unknown variables, and ${device.groups} twice or outside topic:, are errors naming file and statement.
        for (resource, mentions) in [
            ("topic:x/${cert.serial}", "unknown variable '${cert.serial}'"), ("topic:x/${device.name}", "unknown variable"),
            ("topic:${device.groups}/${device.groups}", "once"), ("device:${device.groups}", "once"),
        ] {
            let error = refusal(#"{"version":1,"statements":[{"sid":"v","effect":"allow","principals":["device:*"],"actions":["mqtt:publish","api:device.read"],"resources":["\#(resource)"]}]}"#)
            #expect(error?.contains(mentions) == true && error?.contains("lang.json") == true && error?.contains("'v'") == true, "\(resource): \(error ?? "accepted")")
        }
    }

    @Test("when: groups.any, groups.none, id.prefix; all must hold; never for roles; unknown keys refused")
    func conditions() throws {
        let document = try policy(#"""
            {"version":1,"statements":[
              {"sid":"north-pumps","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:n/${device.id}"],
               "when":{"groups.any":["north"],"groups.none":["quarantine"],"id.prefix":["pump-"]}},
              {"sid":"ops","effect":"allow","principals":["role:ops"],"actions":["api:device.read"],"resources":["device:*"],"when":{"groups.any":["x"]}}
            ]}
            """#)
        let evaluator = PolicyEvaluator(documents: [document])
        #expect(evaluator.allows(device: "pump-001", groups: ["north"], action: "mqtt:publish", name: "n/pump-001"))
        #expect(!evaluator.allows(device: "pump-001", groups: ["south"], action: "mqtt:publish", name: "n/pump-001"))
        #expect(!evaluator.allows(device: "pump-001", groups: ["north", "quarantine"], action: "mqtt:publish", name: "n/pump-001"))
        #expect(!evaluator.allows(device: "gate-001", groups: ["north"], action: "mqtt:publish", name: "n/gate-001"))
        #expect(try !evaluator.decide(principal: .role("ops"), action: "api:device.read", resource: "device:*").allowed)
        #expect(DynsecCompiler.role(for: "gate-001", groups: ["north"], documents: [document]).acls.isEmpty)
        let unknown = refusal(#"{"version":1,"statements":[{"sid":"w","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"],"when":{"groups.all":["a"]}}]}"#)
        #expect(unknown?.contains("unknown condition key 'groups.all'") == true && unknown?.contains("'w'") == true && unknown?.contains("lang.json") == true)
        #expect(refusal(#"{"version":1,"statements":[{"sid":"w","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"],"when":{}}]}"#) != nil)
        #expect(refusal(#"{"version":1,"statements":[{"sid":"w","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"],"when":{"id.prefix":[]}}]}"#) != nil)
        #expect(refusal(#"{"version":1,"statements":[{"sid":"w","effect":"allow","principals":["device:*"],"actions":["mqtt:publish"],"resources":["topic:x"],"when":["x"]}]}"#) != nil)
    }

    @Test("subscribe deny on a topic name compiles to literals for exactly the filters that can match it")
    func literalDenies() throws {
        let document = try policy(#"""
            {"version":1,"statements":[
              {"sid":"own","effect":"allow","principals":["device:*"],"actions":["mqtt:subscribe"],"resources":["topic:d/${device.id}/down/#"]},
              {"sid":"no-secret","effect":"deny","principals":["device:*"],"actions":["mqtt:subscribe"],"resources":["topic:d/${device.id}/down/secret"]}
            ]}
            """#)
        let evaluator = PolicyEvaluator(documents: [document])
        let pump = PolicyPrincipal.device(id: "pump-001", groups: [])
        for (filter, allowed) in [
            ("d/pump-001/down/#", false), ("d/pump-001/down/+", false), ("d/pump-001/down/secret", false), ("d/pump-001/down/config", true),
            ("d/pump-001/down/config/#", true), ("d/pump-001/down", true), ("d/pump-001/down/+/x", true), ("d/pump-001/down/secret/x", true),
        ] {
            #expect(try evaluator.decide(principal: pump, action: "mqtt:subscribe", resource: "topic:" + filter).allowed == allowed, "\(filter)")
        }
        let role = DynsecCompiler.role(for: "pump-001", groups: [], documents: [document])
        let literals = Set(role.acls.filter { $0.acltype == "subscribeLiteral" }.map(\.topic))
        #expect(literals.contains("#") && literals.contains("d/+/down/+") && literals.contains("d/pump-001/down/#") && !literals.contains("d/pump-001/#/x"))
        #expect(role.acls.contains(DynsecACL(acltype: "subscribePattern", topic: "d/pump-001/down/#", priority: 10, allow: true)))
    }

    /// Random policies and requests, checked against the algebraic specification without a broker.
    @Test("fast path equals explained path; an allowed subscription matches only topics that may be subscribed to")
    func properties() throws {
        var rng = SystemRandomNumberGenerator()
        let seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        var state = seed
        func next() -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        func pick(_ list: [String]) -> String { list[next() % list.count] }
        func filter(_ alphabet: [String], hash: Bool) -> String {
            var levels = (0..<(1 + next() % 3)).map { _ in pick(alphabet) }
            if hash && next() % 3 == 0 { levels.append("#") }
            let text = levels.joined(separator: "/")
            return text.isEmpty ? "a" : text
        }
        var topics: [String] = []
        for a in ["a", "b", "", "dev-one"] {
            for b in ["a", "dev-one", ""] {
                let two: String = a + "/" + b
                topics += [a, two, two + "/a"]
            }
        }
        topics = Array(Set(topics.filter { !$0.isEmpty })).sorted()
        var checked = 0
        for _ in 0..<150 {
            let statements = (0..<(2 + next() % 5)).map { index in
                #"{"sid":"s\#(index)","effect":"\#(next() % 3 == 0 ? "deny" : "allow")","principals":["device:*"],"actions":["mqtt:publish","mqtt:subscribe","mqtt:receive"],"resources":["topic:\#(filter(["a", "b", "", "+", "${device.id}"], hash: true))"]}"#
            }
            let document = try policy(#"{"version":1,"statements":[\#(statements.joined(separator: ","))]}"#)
            let evaluator = PolicyEvaluator(documents: [document])
            let device = PolicyPrincipal.device(id: "dev-one", groups: [])
            for topic in topics {
                for action in ["mqtt:publish", "mqtt:receive"] {
                    let explained = try evaluator.decide(principal: device, action: action, resource: "topic:" + topic).allowed
                    #expect(explained == evaluator.allows(device: "dev-one", groups: [], action: action, name: topic), "seed \(seed): \(action) \(topic)")
                    checked += 1
                }
            }
            for _ in 0..<10 {
                let subscription = filter(["a", "b", "", "+", "dev-one"], hash: true)
                guard try evaluator.decide(principal: device, action: "mqtt:subscribe", resource: "topic:" + subscription).allowed else { continue }
                for topic in topics where TopicFilter.matches(subscription, topic) {
                    #expect(try evaluator.decide(principal: device, action: "mqtt:subscribe", resource: "topic:" + topic).allowed, "seed \(seed): \(subscription) allowed but \(topic) is not")
                    checked += 1
                }
            }
        }
        #expect(checked > 1000)
    }
}
