import Foundation
import Synchronization
import Testing
import WardenBroker
import WardenMQTT
import WardenPolicy
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// SplitMix64: a small, seedable generator so a failing run can be replayed from its printed seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random policies, devices and requests over a deliberately small alphabet, so statements overlap, denies cut into
/// allows and `+`, `#`, `${device.id}`, `${device.groups}`, `$` topics and empty levels all occur.
struct AgreementGenerator {
    var rng: SeededGenerator
    static let ids = ["dev-one", "dev-two", "dev-six"]
    static let groups = ["g1", "g2"]

    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
    mutating func pick<T>(_ list: [T]) -> T { list.randomElement(using: &rng)! }

    /// A statement filter: 1–3 levels, variables, `+`, optional trailing `#`, sometimes a `$x` first level.
    mutating func statementFilter() -> String {
        if chance(4) { return "#" }
        var levels: [String] = []
        var usedGroups = false
        for index in 0..<Int.random(in: 1...3, using: &rng) {
            if index == 0 && chance(8) { levels.append("$x"); continue }
            var choices = ["a", "b", "", "${device.id}", "+", "+", pick(Self.ids)]
            if !usedGroups { choices.append("${device.groups}") }
            let level = pick(choices)
            if level == "${device.groups}" { usedGroups = true }
            levels.append(level)
        }
        if chance(40) { levels.append("#") }
        let filter = levels.joined(separator: "/")
        return filter.isEmpty ? "a" : filter
    }

    /// A topic name for a request (publish, receive).
    mutating func topicName(dollar: String) -> String {
        var levels: [String] = []
        for index in 0..<Int.random(in: 1...4, using: &rng) {
            if index == 0 && chance(8) { levels.append(dollar); continue }
            levels.append(pick(["a", "b", "", "g1", "g2", "x"] + Self.ids))
        }
        let topic = levels.joined(separator: "/")
        return topic.isEmpty ? "x" : topic
    }

    /// A subscription filter for a request.
    mutating func subscriptionFilter() -> String {
        if chance(5) { return "#" }
        var levels: [String] = []
        for index in 0..<Int.random(in: 1...4, using: &rng) {
            if index == 0 && chance(8) { levels.append(pick(["$x", "$SYS"])); continue }
            levels.append(pick(["a", "b", "", "g1", "+", "+", "x"] + Self.ids))
        }
        if chance(35) { levels.append("#") }
        let filter = levels.joined(separator: "/")
        return filter.isEmpty ? "+" : filter
    }

    /// A request near one of the policy's own topic filters, so allows and denies are actually hit: variables
    /// substituted (usually for the requesting device), wildcards specialised or kept, sometimes generalised.
    mutating func derived(from document: PolicyDocument, device: String, groups: [String], name: Bool) -> String? {
        let templates = document.statements.flatMap(\.resources).filter { $0.hasPrefix("topic:") }.map { String($0.dropFirst(6)) }
        guard !templates.isEmpty else { return nil }
        var levels: [String] = []
        for level in pick(templates).split(separator: "/", omittingEmptySubsequences: false).map(String.init) {
            switch level {
            case "${device.id}", "${cert.cn}": levels.append(chance(80) ? device : pick(Self.ids))
            case "${device.groups}": levels.append(groups.isEmpty || chance(20) ? pick(Self.groups) : pick(groups))
            case "+": levels.append(name || chance(50) ? pick(["a", "b", "", "x", device]) : "+")
            case "#":
                if !name && chance(50) { levels.append("#"); break }
                for _ in 0..<Int.random(in: 0...2, using: &rng) { levels.append(pick(["a", "b", "", "x"])) }
                if !name && chance(30) { levels.append("+") }
            default: levels.append(!name && chance(10) && !level.hasPrefix("$") ? "+" : level)
            }
        }
        let text = levels.joined(separator: "/")
        return text.isEmpty ? nil : text
    }

    mutating func statement(_ number: Int) -> PolicyDocument.Statement {
        let effect: PolicyDocument.Effect = chance(35) ? .deny : .allow
        var principals = [pick(["device:*", "device:*", "group:g1", "group:g2", "device:" + pick(Self.ids)])]
        if chance(15) { principals.append("group:" + pick(Self.groups)) }
        let actions = Array(Set((0..<Int.random(in: 1...3, using: &rng)).map { _ in pick(["mqtt:publish", "mqtt:subscribe", "mqtt:receive"]) })).sorted()
        var resources = (0..<Int.random(in: 1...2, using: &rng)).map { _ in "topic:" + statementFilter() }
        var finalActions = actions
        if chance(12) {
            finalActions.append("mqtt:connect")
            resources.append(pick(["client:${device.id}", "client:*", "client:" + pick(Self.ids)]))
        }
        var when: PolicyCondition? = nil
        if chance(15) {
            when = pick([
                PolicyCondition(groupsAny: [pick(Self.groups)]), PolicyCondition(groupsNone: [pick(Self.groups)]),
                PolicyCondition(idPrefix: [pick(["dev-t", "dev-o", "dev-"])]),
            ])
        }
        return PolicyDocument.Statement(
            sid: "s\(number)", effect: effect, principals: principals, actions: finalActions, resources: resources, when: when)
    }

    mutating func policy() throws -> PolicyDocument {
        var statements = (0..<Int.random(in: 3...7, using: &rng)).map { statement($0) }
        if chance(85) {
            statements.append(.init(sid: "connect", effect: .allow, principals: ["device:*"], actions: ["mqtt:connect"], resources: ["client:${device.id}"]))
        }
        let document = PolicyDocument(version: 1, description: nil, statements: statements)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Through the parser, so every generated document is a valid one.
        return try PolicyDocument.parse(Array(try encoder.encode(document)), source: "generated")
    }

    mutating func deviceGroups() -> [String] { Self.groups.filter { _ in chance(50) } }
}

/// One compared case.
struct AgreementCase: Sendable {
    var policy: Int
    var device: String
    var groups: [String]
    var action: String
    var resource: String
    var expected: Bool
    var explained: Bool
}

/// A stream drained into an array on a background task.
final class MessageLog: Sendable {
    private final class Storage: Sendable {
        let items = Mutex<[MQTTMessage]>([])
    }

    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ stream: AsyncStream<MQTTMessage>) {
        let storage = self.storage
        task = Task { for await message in stream { storage.items.withLock { $0.append(message) } } }
    }

    deinit { task.cancel() }

    /// Everything received so far.
    var messages: [MQTTMessage] { storage.items.withLock { $0 } }
}

@Suite("policy evaluator agrees with Mosquitto dynsec", .serialized)
struct PolicyAgreementTests {
    static let password = "agreement-pass"

    /// A connected MQTT v5 client with the shared password.
    static func connect(port: Int, username: String) async throws -> MQTTClient {
        let mqtt = try MQTTClient(
            MQTTConfiguration(
                host: "127.0.0.1", port: port, clientID: username + "-" + UUID().uuidString.prefix(6), tls: nil,
                keepAlive: 30, username: username, password: password, connectTimeout: .seconds(5), operationTimeout: .seconds(5)))
        try await mqtt.connect()
        return mqtt
    }

    @Test("≥1,000 random (policy, device, topic, action) cases: the evaluator's decision is what the broker enforces")
    func agreement() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["WARDEN_AGREEMENT_SEED"] ?? "") ?? 0x5EED_2026_0004
        print("policy agreement seed: \(seed) (replay with WARDEN_AGREEMENT_SEED=\(seed))")
        var generator = AgreementGenerator(rng: SeededGenerator(state: seed))
        let policyCount = 10

        struct Device { var policy: Int; var id: String; var groups: [String]; var connects: Bool; var role: DynsecRole }
        var policies: [PolicyDocument] = []
        var devices: [Device] = []
        for p in 0..<policyCount {
            let document = try generator.policy()
            policies.append(document)
            for id in AgreementGenerator.ids {
                let groups = generator.deviceGroups()
                var role = DynsecCompiler.role(for: id, groups: groups, documents: [document])
                role.rolename = "p\(p)-" + role.rolename
                devices.append(
                    Device(policy: p, id: id, groups: groups, connects: DynsecCompiler.mayConnect(deviceID: id, groups: groups, documents: [document]), role: role))
            }
        }

        // The broker: dynsec with default deny, one client per connectable device (and an "rx" twin that may subscribe
        // to everything, to observe receive decisions), all with one password copied from `mosquitto_ctrl dynsec init`.
        let directory = try TemporaryDirectory()
        chmod(directory.path, 0o755)
        let dynsecFile = directory.file("dynsec.json")
        let initialized = try WardenProcess.launch("mosquitto_ctrl", ["dynsec", "init", dynsecFile, "admin", Self.password])
        #expect(initialized.status == 0, "\(initialized.combined)")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dynsecFile))) as? [String: Any])
        var clients = try #require(config["clients"] as? [[String: Any]])
        let admin = try #require(clients.first)
        func client(_ username: String, roles: [(String, Int)]) -> [String: Any] {
            var entry = admin
            entry["username"] = username
            entry["roles"] = roles.map { ["rolename": $0.0, "priority": $0.1] }
            return entry
        }
        var roles = try #require(config["roles"] as? [[String: Any]])
        for index in roles.indices where roles[index]["rolename"] as? String == "admin" {
            var acls = roles[index]["acls"] as? [[String: Any]] ?? []
            acls.append(["acltype": "publishClientSend", "topic": "#", "allow": true])
            acls.append(["acltype": "publishClientSend", "topic": "$x/#", "allow": true])
            roles[index]["acls"] = acls
        }
        roles.append([
            "rolename": "subscribe-all",
            "acls": [["acltype": "subscribePattern", "topic": "#", "allow": true], ["acltype": "subscribePattern", "topic": "$x/#", "allow": true]],
        ])
        for device in devices {
            roles.append([
                "rolename": device.role.rolename,
                "acls": device.role.acls.map { ["acltype": $0.acltype, "topic": $0.topic, "priority": $0.priority, "allow": $0.allow] as [String: Any] },
            ])
            guard device.connects else { continue }
            clients.append(client("p\(device.policy)-\(device.id)", roles: [(device.role.rolename, 1)]))
            clients.append(client("p\(device.policy)-\(device.id)-rx", roles: [("subscribe-all", 100), (device.role.rolename, 1)]))
        }
        config["clients"] = clients
        config["roles"] = roles
        config["defaultACLAccess"] = ["publishClientSend": false, "publishClientReceive": false, "subscribe": false, "unsubscribe": true]
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: dynsecFile))
        let plugin = try BrokerSetup.pluginPath()
        let broker = try MosquittoProcess(directory: directory) { port in
            """
            listener \(port) 127.0.0.1
            allow_anonymous false
            plugin \(plugin)
            plugin_opt_config_file \(dynsecFile)
            """
        }
        defer { broker.stop() }

        let port = broker.port
        func connected(_ username: String) async throws -> MQTTClient { try await Self.connect(port: port, username: username) }

        var cases: [AgreementCase] = []
        func record(_ device: Device, _ action: String, _ resource: String, broker allowed: Bool) {
            let evaluator = PolicyEvaluator(documents: [policies[device.policy]])
            let principal = PolicyPrincipal.device(id: device.id, groups: device.groups)
            let explained = (try? evaluator.decide(principal: principal, action: action, resource: resource).allowed) ?? false
            cases.append(AgreementCase(policy: device.policy, device: device.id, groups: device.groups, action: action, resource: resource, expected: allowed, explained: explained))
        }

        // Connect: a device gets a client exactly when mayConnect says so.
        for device in devices {
            var accepted = false
            do {
                let mqtt = try await connected("p\(device.policy)-\(device.id)")
                accepted = true
                await mqtt.disconnect()
            } catch let error as MQTTError where error.code == .connectionRefused {
                accepted = false
            }
            record(device, "mqtt:connect", "client:\(device.id)", broker: accepted)
        }

        // Publish and subscribe: per device, in parallel.
        struct Planned: Sendable { var device: Int; var action: String; var resource: String }
        var planned: [Planned] = []
        for (index, device) in devices.enumerated() where device.connects {
            let document = policies[device.policy]
            for _ in 0..<14 {
                let near = generator.chance(60) ? generator.derived(from: document, device: device.id, groups: device.groups, name: true) : nil
                planned.append(Planned(device: index, action: "mqtt:publish", resource: near ?? generator.topicName(dollar: generator.pick(["$x", "$SYS"]))))
            }
            for _ in 0..<14 {
                let near = generator.chance(60) ? generator.derived(from: document, device: device.id, groups: device.groups, name: false) : nil
                planned.append(Planned(device: index, action: "mqtt:subscribe", resource: near ?? generator.subscriptionFilter()))
            }
        }
        let usernames = devices.map { "p\($0.policy)-\($0.id)" }
        let outcomes = try await withThrowingTaskGroup(of: [(Int, Bool)].self) { group in
            for (index, device) in devices.enumerated() where device.connects {
                let mine = planned.enumerated().filter { $0.element.device == index }
                let username = usernames[index]
                group.addTask {
                    let mqtt = try await Self.connect(port: port, username: username)
                    var results: [(Int, Bool)] = []
                    for (number, plan) in mine {
                        if plan.action == "mqtt:publish" {
                            let code = try await mqtt.publish(MQTTMessage(topic: plan.resource, payload: Array("p".utf8), qos: 1))
                            results.append((number, code < 128))
                        } else {
                            let code = try await mqtt.subscribe(plan.resource, qos: 1)
                            results.append((number, code < 128))
                            if code < 128 { try await mqtt.unsubscribe(plan.resource) }
                        }
                    }
                    await mqtt.disconnect()
                    return results
                }
            }
            var all: [(Int, Bool)] = []
            for try await part in group { all += part }
            return all
        }
        for (number, allowed) in outcomes.sorted(by: { $0.0 < $1.0 }) {
            let plan = planned[number]
            record(devices[plan.device], plan.action, "topic:" + plan.resource, broker: allowed)
        }

        // Receive: every rx twin subscribes to everything; the admin publishes each topic once; a delivery is a receive.
        var receiveTopics: [String] = []
        while receiveTopics.count < 30 {
            let device = generator.pick(devices)
            let near = generator.chance(70) ? generator.derived(from: policies[device.policy], device: device.id, groups: device.groups, name: true) : nil
            let topic = near ?? generator.topicName(dollar: "$x")
            // The admin cannot publish to $SYS (the broker refuses every client), so receive is observed on the rest.
            if !receiveTopics.contains(topic) && !topic.hasPrefix("$SYS") { receiveTopics.append(topic) }
        }
        var logs: [(Int, MQTTClient, MessageLog)] = []
        for (index, device) in devices.enumerated() where device.connects {
            let mqtt = try await connected(usernames[index] + "-rx")
            let log = MessageLog(mqtt.messages)
            #expect(try await mqtt.subscribe("#", qos: 1) < 128)
            #expect(try await mqtt.subscribe("$x/#", qos: 1) < 128)
            logs.append((index, mqtt, log))
        }
        let publisher = try await connected("admin")
        for (number, topic) in receiveTopics.enumerated() {
            let code = try await publisher.publish(MQTTMessage(topic: topic, payload: Array("r\(number)".utf8), qos: 1))
            #expect(code < 128, "admin publish to '\(topic)': \(code)")
        }
        let marker = "agreement/end"
        _ = try await publisher.publish(MQTTMessage(topic: marker, payload: Array("end".utf8), qos: 1))
        // Every rx twin that may receive the marker has it once all earlier messages were routed; give the rest a moment.
        try await Task.sleep(for: .milliseconds(600))
        for (index, mqtt, log) in logs {
            let received = Set(log.messages.map { $0.topic + "\u{0}" + String(decoding: $0.payload, as: UTF8.self) })
            for (number, topic) in receiveTopics.enumerated() {
                record(devices[index], "mqtt:receive", "topic:" + topic, broker: received.contains(topic + "\u{0}r\(number)"))
            }
            await mqtt.disconnect()
        }
        await publisher.disconnect()

        // Compare: the fast path and the explained path must both equal the broker.
        var disagreements: [String] = []
        for item in cases {
            let device = devices.first { $0.policy == item.policy && $0.id == item.device }!
            let evaluator = PolicyEvaluator(documents: [policies[item.policy]])
            let name = String(item.resource.drop { $0 != ":" }.dropFirst())
            let fast = item.action == "mqtt:subscribe" ? item.explained : evaluator.allows(device: item.device, groups: item.groups, action: item.action, name: name)
            if fast != item.expected || item.explained != item.expected {
                disagreements.append(
                    "policy \(item.policy) device \(item.device) \(item.groups) \(item.action) \(item.resource): broker \(item.expected), evaluator \(item.explained) (fast \(fast)); role \(device.role.acls.map { "\($0.acltype) \($0.topic) \($0.allow ? "allow" : "deny")" })")
            }
        }
        let byAction = Dictionary(grouping: cases, by: \.action).mapValues { ($0.count, $0.filter(\.expected).count) }
        print("policy agreement: \(cases.count) cases, \(disagreements.count) disagreements; by action (cases, allowed): \(byAction)")
        for line in disagreements.prefix(15) { print("DISAGREE " + line) }
        if !disagreements.isEmpty {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            for index in Set(disagreements.prefix(15).compactMap { Int($0.dropFirst("policy ".count).prefix { $0 != " " }) }).sorted() {
                print("policy \(index): " + String(decoding: try encoder.encode(policies[index]), as: UTF8.self))
            }
        }
        #expect(cases.count >= 1000)
        #expect(disagreements.isEmpty, "seed \(seed)")
        // Both outcomes occur for every action, so the comparison is not one-sided.
        for action in ["mqtt:connect", "mqtt:publish", "mqtt:subscribe", "mqtt:receive"] {
            let (total, allowed) = byAction[action] ?? (0, 0)
            #expect(allowed > 0 && allowed < total, "\(action): \(allowed) of \(total) allowed")
        }
    }
}
