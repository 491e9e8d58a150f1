import WardenCore

/// The kind of a resource: MQTT topics, device records, firmware images.
public enum ResourceKind: String, Sendable, Hashable, Codable {
    case topic, device, firmware
}

/// A parsed resource of a statement or a request: a kind and a filter in topic-filter form. `device:<id|*>` and
/// `firmware:<name|*>` are one-level filters (`*` becomes `+`), so the same algebra answers every kind.
public struct ResourcePattern: Sendable, Hashable {
    /// The kind.
    public var kind: ResourceKind
    /// The filter, possibly with `${device.id}`.
    public var template: String
    /// Whether the template uses `${device.id}`.
    public var usesDeviceID: Bool

    /// Parses `topic:<filter>`, `device:<id|*>` or `firmware:<name|*>`.
    public static func parse(_ text: String, at: String) throws -> ResourcePattern {
        guard let colon = text.firstIndex(of: ":"), let kind = ResourceKind(rawValue: String(text[..<colon])) else {
            throw WardenError.badInput("\(at): unknown resource '\(text)' (use topic:<filter>, device:<id|*> or firmware:<name|*>)")
        }
        let value = String(text[text.index(after: colon)...])
        let uses = value.contains("${device.id}")
        let probe = PolicyDocument.substitute(value, deviceID: "x")
        switch kind {
        case .topic:
            try TopicFilter.validate(probe, at: at)
            return ResourcePattern(kind: .topic, template: value, usesDeviceID: uses)
        case .device, .firmware:
            if value == "*" { return ResourcePattern(kind: kind, template: "+", usesDeviceID: false) }
            guard !probe.isEmpty, !probe.contains("/"), !probe.contains("+"), !probe.contains("#"), !probe.contains("*"),
                !probe.hasPrefix("$"), !probe.contains("\u{0}")
            else {
                throw WardenError.badInput("\(at): resource '\(text)' must name one \(kind.rawValue) or '*'")
            }
            if kind == .device && !uses { try DeviceID.validate(value) }
            return ResourcePattern(kind: kind, template: value, usesDeviceID: uses)
        }
    }

    /// The filter for one device (nil when the template needs a device id and there is none).
    func filter(deviceID: String?) -> String? {
        guard usesDeviceID else { return template }
        guard let deviceID else { return nil }
        return PolicyDocument.substitute(template, deviceID: deviceID)
    }

    /// The resource as written in a document (`device:*`, `topic:d/${device.id}/up/#`).
    public var text: String {
        kind == .topic ? "topic:" + template : kind.rawValue + ":" + (template == "+" ? "*" : template)
    }

    /// Whether `action` can ever apply to this kind of resource.
    public func applies(to action: String) -> Bool {
        action.hasPrefix("mqtt:") ? kind == .topic : kind != .topic
    }
}

/// Who is asking: a device (its id and groups) or an operator role.
public enum PolicyPrincipal: Sendable, Hashable, CustomStringConvertible {
    case device(id: String, groups: [String])
    case role(String)

    /// Parses `device:<id>` (with `groups`) or `role:<name>`.
    public static func parse(_ text: String, groups: [String] = []) throws -> PolicyPrincipal {
        if text.hasPrefix("device:") {
            let id = String(text.dropFirst("device:".count))
            try DeviceID.validate(id)
            return .device(id: id, groups: groups)
        }
        if text.hasPrefix("role:"), text.count > "role:".count { return .role(String(text.dropFirst("role:".count))) }
        throw WardenError.badInput("principal '\(text)' must be device:<id> or role:<name>")
    }

    public var description: String {
        switch self {
        case .device(let id, let groups): return "device:\(id)" + (groups.isEmpty ? "" : " (groups \(groups.joined(separator: ",")))")
        case .role(let name): return "role:\(name)"
        }
    }

    var deviceID: String? {
        if case .device(let id, _) = self { return id }
        return nil
    }
}

/// The answer to a request.
public struct Decision: Sendable, Equatable, Codable {
    /// Why.
    public enum Reason: String, Sendable, Codable {
        case explicitDeny = "explicit deny"
        case allowedBy = "allowed by"
        case defaultDeny = "default deny"
    }

    /// allow or deny.
    public var effect: PolicyDocument.Effect
    /// The statements that decided: the denies that intersect the request, or the allows that cover it.
    public var decidingStatements: [String]
    /// Why.
    public var reason: Reason
    /// One sentence for a human.
    public var detail: String

    /// Whether the request is allowed.
    public var allowed: Bool { effect == .allow }
}

/// Compiles documents once and answers requests. Default deny; an explicit deny wins; a request on a filter (a
/// subscription, or `device:*`) is allowed only when every topic it can match is allowed: it is covered by the union of
/// the applicable allow filters and intersects no applicable deny filter.
public struct PolicyEvaluator: Sendable {
    struct Compiled: Sendable {
        var sid: String
        var source: String
        var effect: PolicyDocument.Effect
        var principals: [Principal]
        var resources: [ResourcePattern]
    }

    /// Statements by action.
    let byAction: [String: [Compiled]]

    /// Compiles `documents` (already validated by `PolicyDocument.parse`). Sids are qualified by the document's position
    /// only when two documents repeat one.
    public init(documents: [PolicyDocument], sources: [String]? = nil) {
        var index: [String: [Compiled]] = [:]
        var sidCount: [String: Int] = [:]
        for document in documents { for statement in document.statements { sidCount[statement.sid, default: 0] += 1 } }
        for (position, document) in documents.enumerated() {
            let source = sources?[position] ?? "document \(position + 1)"
            for statement in document.statements {
                let principals = statement.principals.compactMap { try? Principal.parse($0, at: "") }
                let resources = statement.resources.compactMap { try? ResourcePattern.parse($0, at: "") }
                let sid = (sidCount[statement.sid] ?? 0) > 1 ? "\(source)#\(statement.sid)" : statement.sid
                for action in Set(statement.actions) {
                    let compiled = Compiled(
                        sid: sid, source: source, effect: statement.effect, principals: principals,
                        resources: resources.filter { $0.applies(to: action) })
                    if !compiled.resources.isEmpty { index[action, default: []].append(compiled) }
                }
            }
        }
        byAction = index
    }

    /// Decides `action` by `principal` on `resource` (`topic:…`, `device:…`, `firmware:…`).
    public func decide(principal: PolicyPrincipal, action: String, resource: String) throws -> Decision {
        let request = try ResourcePattern.parse(resource, at: "request")
        guard !request.usesDeviceID else { throw WardenError.badInput("request resource '\(resource)' must not use variables") }
        return decide(principal: principal, action: action, request: request)
    }

    func decide(principal: PolicyPrincipal, action: String, request: ResourcePattern) -> Decision {
        let filter = request.template
        var denies: [String] = []
        var allows: [(sid: String, filter: String)] = []
        for statement in byAction[action] ?? [] {
            guard statement.principals.contains(where: { $0.matches(principal) }) else { continue }
            for pattern in statement.resources where pattern.kind == request.kind {
                guard let granted = pattern.filter(deviceID: principal.deviceID) else { continue }
                if statement.effect == .deny {
                    if TopicFilter.intersects(granted, filter), !denies.contains(statement.sid) { denies.append(statement.sid) }
                } else if TopicFilter.intersects(granted, filter) {
                    allows.append((statement.sid, granted))
                }
            }
        }
        let what = "\(principal) \(action) \(request.text)"
        if !denies.isEmpty {
            return Decision(
                effect: .deny, decidingStatements: denies, reason: .explicitDeny,
                detail: "\(what): denied by statement(s) \(denies.joined(separator: ", "))")
        }
        var sids: [String] = []
        for allow in allows where !sids.contains(allow.sid) { sids.append(allow.sid) }
        if TopicFilter.covered(filter, by: allows.map(\.filter)) {
            return Decision(
                effect: .allow, decidingStatements: sids, reason: .allowedBy,
                detail: "\(what): allowed by statement(s) \(sids.joined(separator: ", "))")
        }
        let partly = sids.isEmpty ? "no statement allows it" : "statement(s) \(sids.joined(separator: ", ")) allow only part of it"
        return Decision(effect: .deny, decidingStatements: [], reason: .defaultDeny, detail: "\(what): denied by default (\(partly))")
    }
}

extension Principal {
    func matches(_ principal: PolicyPrincipal) -> Bool {
        switch (self, principal) {
        case (.role(let a), .role(let b)): return a == b
        case (.role, .device), (_, .role): return false
        case (_, .device(let id, let groups)): return matches(deviceID: id, groups: groups)
        }
    }
}
