import Foundation
import WardenCore

/// A policy document: default-deny statements over principals, actions and resources.
///
/// The policy language (specified in `policies/README.md`): `effect`, `principals` (`device:<id|*>`, `group:<name>`,
/// `role:<name>`), `actions` (`mqtt:connect|publish|subscribe|receive`, `api:<verb>`), `resources` (`client:<id|*>`,
/// `topic:<filter>`, `device:<id|*>`, `firmware:<name|*>`, with the variables `${device.id}`, `${device.groups}` and
/// `${cert.cn}`) and an optional `when` condition on the device. Nothing is allowed unless a statement allows it, and an
/// explicit deny wins; ``PolicyEvaluator`` decides.
public struct PolicyDocument: Codable, Sendable, Equatable {
    /// Format version; only 1 exists.
    public var version: Int
    /// Free text.
    public var description: String?
    /// The statements, in file order.
    public var statements: [Statement]

    /// Creates a document (validate it with ``validate(source:)`` or build it through ``parse(_:source:)``).
    public init(version: Int, description: String?, statements: [Statement]) {
        self.version = version
        self.description = description
        self.statements = statements
    }

    /// One statement.
    public struct Statement: Codable, Sendable, Equatable {
        /// Statement id, unique in the document; used in explanations.
        public var sid: String
        /// allow or deny.
        public var effect: Effect
        /// Who: `device:*`, `device:<id>`, `group:<name>`, `role:<name>`.
        public var principals: [String]
        /// What: `mqtt:publish`, `mqtt:subscribe`, `mqtt:receive`, `api:…`.
        public var actions: [String]
        /// On what: `client:<id|*>`, `topic:<MQTT topic filter>`, `device:<id|*>`, `firmware:<name|*>`.
        public var resources: [String]
        /// Optional condition on the requesting device; a statement with one never applies to a role.
        public var when: PolicyCondition?

        /// Creates a statement.
        public init(
            sid: String, effect: Effect, principals: [String], actions: [String], resources: [String], when: PolicyCondition? = nil
        ) {
            self.sid = sid
            self.effect = effect
            self.principals = principals
            self.actions = actions
            self.resources = resources
            self.when = when
        }
    }

    /// The effect of a statement.
    public enum Effect: String, Codable, Sendable {
        /// Grants.
        case allow
        /// Forbids, overriding any allow.
        case deny
    }

    /// Variables a resource may use.
    public static let knownVariables: Set<String> = ["device.id", "device.groups", "cert.cn"]
    /// MQTT actions: `mqtt:connect` (on `client:` resources) and the topic actions.
    public static let mqttActions: Set<String> = ["mqtt:connect", "mqtt:publish", "mqtt:subscribe", "mqtt:receive"]
    /// Largest document accepted.
    public static let maximumSize = 1024 * 1024

    /// Parses and checks a document; errors name `source` and the statement.
    public static func parse(_ bytes: [UInt8], source: String) throws -> PolicyDocument {
        guard bytes.count <= maximumSize else {
            throw WardenError.badInput("policy '\(source)' is larger than \(maximumSize / 1024) KiB")
        }
        let document: PolicyDocument
        do {
            document = try JSONDecoder().decode(PolicyDocument.self, from: Data(bytes))
        } catch {
            throw WardenError.badInput("policy '\(source)' is not a valid policy document: \(Self.describe(error))")
        }
        try checkKeys(bytes, source: source)
        try document.validate(source: source)
        return document
    }

    /// Refuses unknown fields, so a condition this version does not understand (such as `when`) is never silently
    /// dropped, widening the grant.
    static func checkKeys(_ bytes: [UInt8], source: String) throws {
        guard let top = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return }
        let topKeys: Set<String> = ["version", "description", "statements"]
        let statementKeys: Set<String> = ["sid", "effect", "principals", "actions", "resources", "when"]
        if let unknown = top.keys.sorted().first(where: { !topKeys.contains($0) }) {
            throw WardenError.badInput("policy '\(source)': unknown field '\(unknown)'")
        }
        for statement in (top["statements"] as? [[String: Any]]) ?? [] {
            if let unknown = statement.keys.sorted().first(where: { !statementKeys.contains($0) }) {
                throw WardenError.badInput("policy '\(source)' statement '\(statement["sid"] as? String ?? "?")': unknown field '\(unknown)' (not supported by this version)")
            }
            if let when = statement["when"] {
                try PolicyCondition.checkKeys(when, at: "policy '\(source)' statement '\(statement["sid"] as? String ?? "?")'")
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing '\(key.stringValue)' at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription) at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        default:
            return "\(error)"
        }
    }

    /// Semantic checks: version, unique sids, known principal/action/resource forms, known variables, valid
    /// MQTT topic filters.
    public func validate(source: String) throws {
        guard version == 1 else { throw WardenError.badInput("policy '\(source)': version \(version) is not supported (use 1)") }
        var seen = Set<String>()
        for statement in statements {
            let at = "policy '\(source)' statement '\(statement.sid)'"
            guard !statement.sid.isEmpty, seen.insert(statement.sid).inserted else {
                throw WardenError.badInput("policy '\(source)': statement id '\(statement.sid)' is empty or repeated")
            }
            guard !statement.principals.isEmpty, !statement.actions.isEmpty, !statement.resources.isEmpty else {
                throw WardenError.badInput("\(at): principals, actions and resources must not be empty")
            }
            for principal in statement.principals { try Principal.parse(principal, at: at) }
            for action in statement.actions where !(Self.mqttActions.contains(action) || action.hasPrefix("api:")) {
                throw WardenError.badInput("\(at): unknown action '\(action)'")
            }
            for resource in statement.resources {
                try Self.checkVariables(resource, at: at)
                _ = try ResourcePattern.parse(resource, at: at)
            }
            try statement.when?.validate(at: at)
        }
    }

    static func checkVariables(_ text: String, at: String) throws {
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw WardenError.badInput("\(at): unterminated variable in '\(text)'")
            }
            let name = String(rest[start.upperBound..<end])
            guard knownVariables.contains(name) else {
                throw WardenError.badInput("\(at): unknown variable '${\(name)}' (known: \(knownVariables.sorted().map { "${\($0)}" }.joined(separator: ", ")))")
            }
            rest = rest[rest.index(after: end)...]
        }
    }

    /// Replaces `${device.id}` and `${cert.cn}` (the certificate CN, which Warden issues as the device id) with
    /// `deviceID`, and `${device.groups}` with `group` (a probe name when none is given).
    static func substitute(_ text: String, deviceID: String, group: String = "probe-group") -> String {
        guard text.contains("${") else { return text }
        return text.replacingOccurrences(of: "${device.id}", with: deviceID).replacingOccurrences(of: "${cert.cn}", with: deviceID)
            .replacingOccurrences(of: "${device.groups}", with: group)
    }
}

/// A parsed principal.
enum Principal: Equatable {
    case anyDevice
    case device(String)
    case group(String)
    case role(String)

    @discardableResult
    static func parse(_ text: String, at: String) throws -> Principal {
        if text == "device:*" { return .anyDevice }
        if text.hasPrefix("device:") {
            let id = String(text.dropFirst("device:".count))
            try DeviceID.validate(id)
            return .device(id)
        }
        if text.hasPrefix("group:"), text.count > "group:".count { return .group(String(text.dropFirst("group:".count))) }
        if text.hasPrefix("role:"), text.count > "role:".count { return .role(String(text.dropFirst("role:".count))) }
        throw WardenError.badInput("\(at): unknown principal '\(text)' (use device:<id>, device:*, group:<name> or role:<name>)")
    }

    func matches(deviceID: String, groups: [String]) -> Bool {
        switch self {
        case .anyDevice: return true
        case .device(let id): return id == deviceID
        case .group(let name): return groups.contains(name)
        case .role: return false
        }
    }
}

/// MQTT topic filters (MQTT 5.0 §4.7).
public enum TopicFilter {
    /// Checks that `filter` is a valid MQTT topic filter: non-empty, `#` only as the last whole level, `+` only as
    /// a whole level, no NUL.
    public static func validate(_ filter: String, at: String) throws {
        guard !filter.isEmpty, filter.utf8.count <= 65_535, !filter.contains("\u{0}") else {
            throw WardenError.badInput("\(at): topic filter '\(filter)' is empty, too long or contains NUL")
        }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#") && (level != "#" || index != levels.count - 1) {
                throw WardenError.badInput("\(at): '#' must be the last level on its own in '\(filter)'")
            }
            if level.contains("+") && level != "+" {
                throw WardenError.badInput("\(at): '+' must be a whole level in '\(filter)'")
            }
        }
    }
}
