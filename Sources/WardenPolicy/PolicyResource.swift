import WardenCore

/// The kind of a resource: MQTT clients (for `mqtt:connect`), MQTT topics, device records, firmware images.
public enum ResourceKind: String, Sendable, Hashable, Codable {
    case client, topic, device, firmware
}

/// A parsed resource of a statement or a request: a kind and a filter in topic-filter form. `client:<id|*>`,
/// `device:<id|*>` and `firmware:<name|*>` are one-level filters (`*` becomes `+`), so the same algebra answers every
/// kind.
public struct ResourcePattern: Sendable, Hashable {
    /// The kind.
    public var kind: ResourceKind
    /// The filter, possibly with variables.
    public var template: String
    /// Whether the template uses a device variable (`${device.id}`, `${cert.cn}` or `${device.groups}`).
    public var usesDeviceID: Bool
    /// Whether the template uses `${device.groups}` (one resource per group of the device).
    public var usesGroups: Bool = false

    /// Parses `client:<id|*>`, `topic:<filter>`, `device:<id|*>` or `firmware:<name|*>`.
    public static func parse(_ text: String, at: String) throws -> ResourcePattern {
        guard let colon = text.firstIndex(of: ":"), let kind = ResourceKind(rawValue: String(text[..<colon])) else {
            throw WardenError.badInput("\(at): unknown resource '\(text)' (use client:<id|*>, topic:<filter>, device:<id|*> or firmware:<name|*>)")
        }
        let value = String(text[text.index(after: colon)...])
        let groups = value.components(separatedBy: "${device.groups}").count - 1
        let uses = value.contains("${device.id}") || value.contains("${cert.cn}") || groups > 0
        if groups > 0 && (kind != .topic || groups > 1) {
            throw WardenError.badInput("\(at): '${device.groups}' may appear once, in topic: resources only ('\(text)')")
        }
        let probe = PolicyDocument.substitute(value, deviceID: "x")
        switch kind {
        case .topic:
            try TopicFilter.validate(probe, at: at)
            return ResourcePattern(kind: .topic, template: value, usesDeviceID: uses, usesGroups: groups > 0)
        case .client, .device, .firmware:
            if value == "*" { return ResourcePattern(kind: kind, template: "+", usesDeviceID: false) }
            guard !probe.isEmpty, !probe.contains("/"), !probe.contains("+"), !probe.contains("#"), !probe.contains("*"),
                !probe.hasPrefix("$"), !probe.contains("\u{0}")
            else {
                throw WardenError.badInput("\(at): resource '\(text)' must name one \(kind.rawValue) or '*'")
            }
            if kind == .device || kind == .client, !uses { try DeviceID.validate(value) }
            return ResourcePattern(kind: kind, template: value, usesDeviceID: uses)
        }
    }

    /// The filter for one device (nil when the template needs a device id and there is none); `${device.groups}`
    /// becomes a probe group name.
    func filter(deviceID: String?) -> String? {
        guard usesDeviceID else { return template }
        guard let deviceID else { return nil }
        return PolicyDocument.substitute(template, deviceID: deviceID)
    }

    /// The filters for one device: one, or one per usable group with `${device.groups}` (none without groups).
    func filters(deviceID: String, groups: [String]) -> [String] {
        guard usesDeviceID else { return [template] }
        guard usesGroups else { return [PolicyDocument.substitute(template, deviceID: deviceID)] }
        return groups.filter(Self.isTopicLevel).map { PolicyDocument.substitute(template, deviceID: deviceID, group: $0) }
    }

    /// Whether a group name can stand as one topic level: non-empty, no `/`, `+`, `#` or NUL, not starting with `$`.
    /// Other group names never expand `${device.groups}`.
    static func isTopicLevel(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("$") && !name.contains(where: { $0 == "/" || $0 == "+" || $0 == "#" || $0 == "\u{0}" })
    }

    /// The resource as written in a document (`device:*`, `topic:d/${device.id}/up/#`).
    public var text: String {
        kind == .topic ? "topic:" + template : kind.rawValue + ":" + (template == "+" ? "*" : template)
    }

    /// Whether `action` can ever apply to this kind of resource: `mqtt:connect` to `client:`, the other `mqtt:`
    /// actions to `topic:`, `api:` actions to `device:` and `firmware:`.
    public func applies(to action: String) -> Bool {
        if action == "mqtt:connect" { return kind == .client }
        return action.hasPrefix("mqtt:") ? kind == .topic : (kind == .device || kind == .firmware)
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
        /// Mosquitto refuses every client publish to `$SYS/…` (except bridge state), whatever the policy.
        case brokerReserved = "broker reserved"
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

