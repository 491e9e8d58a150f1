/// A warning about a valid policy.
public struct PolicyFinding: Sendable, Equatable, Codable {
    /// Stable kind: `cross-device`, `reserved-topic`, `never-matches`, `shadowed`.
    public var kind: String
    /// The file.
    public var source: String
    /// The statement.
    public var sid: String
    /// One sentence.
    public var message: String
}

/// Lints validated documents (all in force together).
///
/// - `cross-device`: an allow for devices whose topic filter, for one device, can match a topic in another device's
///   namespace. Namespaces are `d/${device.id}/#` and every topic template of the documents that uses `${device.id}`
///   or `${cert.cn}` (not `${device.groups}` alone: group topics are shared by design).
/// - `reserved-topic`: an allow whose topic filter can match a `$CONTROL/…` or `$SYS/…` topic.
/// - `never-matches`: a statement none of whose (action, resource) pairs can apply (an `mqtt:` action only applies to
///   `topic:` resources, an `api:` action only to `device:`/`firmware:`; `${device.id}` never applies to `role:`).
/// - `shadowed`: an allow every (principal, action, resource) of which is covered by denies.
public enum PolicyLint {
    static let selfID = "lint-device-a"
    static let otherID = "lint-device-b"

    /// The findings for `documents`, named by `sources`.
    public static func check(_ documents: [PolicyDocument], sources: [String]) -> [PolicyFinding] {
        var findings: [PolicyFinding] = []
        var namespaces: Set<String> = ["d/${device.id}/#"]
        for document in documents {
            for statement in document.statements {
                for resource in statement.resources {
                    // Group topics (${device.groups} alone) are shared by design, not a device's namespace.
                    if let pattern = try? ResourcePattern.parse(resource, at: ""), pattern.kind == .topic,
                        pattern.template.contains("${device.id}") || pattern.template.contains("${cert.cn}") {
                        namespaces.insert(pattern.template)
                    }
                }
            }
        }
        let all: [(statement: PolicyDocument.Statement, source: String)] = documents.enumerated().flatMap { index, document in
            document.statements.map { ($0, sources[index]) }
        }
        for (statement, source) in all {
            func note(_ kind: String, _ message: String) {
                findings.append(PolicyFinding(kind: kind, source: source, sid: statement.sid, message: message))
            }
            let principals = statement.principals.compactMap { try? Principal.parse($0, at: "") }
            let resources = statement.resources.compactMap { try? ResourcePattern.parse($0, at: "") }
            let forDevices = principals.contains { if case .role = $0 { return false } else { return true } }
            // never-matches
            let usable = statement.actions.contains { action in
                resources.contains { $0.applies(to: action) && (forDevices || !$0.usesDeviceID) }
            }
            if !usable {
                note("never-matches", "statement can never match: its actions \(statement.actions) do not apply to its resources \(statement.resources) for its principals")
            }
            guard statement.effect == .allow else { continue }
            let mqtt = statement.actions.filter { $0.hasPrefix("mqtt:") }
            let topics = resources.filter { $0.kind == .topic }
            if !mqtt.isEmpty {
                for topic in topics {
                    let mine = topic.filter(deviceID: forDevices ? selfID : nil) ?? topic.template
                    if forDevices, TopicFilter.hasWildcards(mine) {
                        let reached = namespaces.sorted().filter { namespace in
                            TopicFilter.intersects(mine, PolicyDocument.substitute(namespace, deviceID: otherID))
                        }
                        if !reached.isEmpty {
                            note("cross-device", "'\(topic.text)' granted to \(statement.principals.joined(separator: ", ")) lets one device reach another device's topics (\(reached.map { "topic:" + $0 }.joined(separator: ", ")) of another device)")
                        }
                    }
                    for reserved in ["$CONTROL/#", "$SYS/#"] where TopicFilter.intersects(mine, reserved) {
                        note("reserved-topic", "'\(topic.text)' exposes \(reserved.dropLast(2)) topics")
                    }
                }
            }
            // shadowed: every triple covered by denies.
            if usable, !statement.principals.isEmpty {
                var shadowedBy: [String] = []
                var shadowed = true
                outer: for principal in principals {
                    for action in statement.actions {
                        for resource in resources where resource.applies(to: action) {
                            if case .role = principal, resource.usesDeviceID { continue }
                            let deviceID: String? = { if case .role = principal { return nil } else { return selfID } }()
                            guard let filter = resource.filter(deviceID: deviceID) else { continue }
                            var denyFilters: [String] = []
                            for (other, _) in all where other.effect == .deny && other.actions.contains(action) {
                                let otherPrincipals = other.principals.compactMap { try? Principal.parse($0, at: "") }
                                guard otherPrincipals.contains(where: { $0.covers(principal) }) else { continue }
                                for deny in other.resources.compactMap({ try? ResourcePattern.parse($0, at: "") }) where deny.kind == resource.kind {
                                    if let denied = deny.filter(deviceID: deviceID) {
                                        denyFilters.append(denied)
                                        if TopicFilter.intersects(denied, filter), !shadowedBy.contains(other.sid) { shadowedBy.append(other.sid) }
                                    }
                                }
                            }
                            if !TopicFilter.covered(filter, by: denyFilters) {
                                shadowed = false
                                break outer
                            }
                        }
                    }
                }
                if shadowed {
                    note("shadowed", "allow is fully shadowed by deny statement(s) \(shadowedBy.joined(separator: ", ")): it never grants anything")
                }
            }
        }
        return findings
    }
}

extension Principal {
    /// Whether every principal `other` names is also named by `self`.
    func covers(_ other: Principal) -> Bool {
        switch (self, other) {
        case (.anyDevice, .anyDevice), (.anyDevice, .device), (.anyDevice, .group): return true
        default: return self == other
        }
    }
}
