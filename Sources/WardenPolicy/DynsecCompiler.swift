import WardenCore

/// One ACL entry of a Mosquitto dynamic-security role.
public struct DynsecACL: Codable, Sendable, Equatable, Hashable {
    /// `publishClientSend`, `publishClientReceive`, `subscribePattern`.
    public var acltype: String
    /// Topic or filter.
    public var topic: String
    /// Higher is checked first; denies are compiled above allows so an explicit deny wins.
    public var priority: Int
    /// Allow or deny.
    public var allow: Bool

    /// Creates an ACL entry.
    public init(acltype: String, topic: String, priority: Int, allow: Bool) {
        self.acltype = acltype
        self.topic = topic
        self.priority = priority
        self.allow = allow
    }
}

/// A dynamic-security role for one device.
public struct DynsecRole: Codable, Sendable, Equatable {
    /// Role name: `device-<id>` (dynsec 2.0.11 has no %u/%c substitution, so one role per device).
    public var rolename: String
    /// Its ACLs, sorted for stable output.
    public var acls: [DynsecACL]
}

/// Compiles policy documents into per-device dynsec roles.
///
/// Mapping: `mqtt:publish` → `publishClientSend`; `mqtt:receive` → `publishClientReceive`; `mqtt:subscribe` →
/// `subscribePattern` (dynsec matches the requested filter against the ACL pattern, so `#` or `d/+/down/#` do not
/// match `d/<id>/down/#` and are refused). Deny statements get priority 100, allows 10, so a deny always wins; the
/// broker's default ACL access is deny for send, receive and subscribe.
public enum DynsecCompiler {
    /// Role name for a device.
    public static func roleName(for deviceID: String) -> String { "device-\(deviceID)" }

    /// The role of `deviceID` (member of `groups`) under `documents`.
    public static func role(for deviceID: String, groups: [String], documents: [PolicyDocument]) -> DynsecRole {
        var acls = Set<DynsecACL>()
        for document in documents {
            for statement in document.statements {
                let principals = statement.principals.compactMap { try? Principal.parse($0, at: "") }
                guard principals.contains(where: { $0.matches(deviceID: deviceID, groups: groups) }) else { continue }
                for action in statement.actions {
                    guard let acltype = aclType(for: action) else { continue }
                    for resource in statement.resources where resource.hasPrefix("topic:") {
                        let topic = PolicyDocument.substitute(String(resource.dropFirst("topic:".count)), deviceID: deviceID)
                        acls.insert(
                            DynsecACL(
                                acltype: acltype, topic: topic, priority: statement.effect == .deny ? 100 : 10,
                                allow: statement.effect == .allow))
                    }
                }
            }
        }
        return DynsecRole(
            rolename: roleName(for: deviceID),
            acls: acls.sorted { ($0.acltype, $0.topic, $0.priority, $0.allow ? 1 : 0) < ($1.acltype, $1.topic, $1.priority, $1.allow ? 1 : 0) })
    }

    static func aclType(for action: String) -> String? {
        switch action {
        case "mqtt:publish": return "publishClientSend"
        case "mqtt:receive": return "publishClientReceive"
        case "mqtt:subscribe": return "subscribePattern"
        default: return nil
        }
    }
}
