import Foundation
import WardenCore

/// One ACL entry of a Mosquitto dynamic-security role.
public struct DynsecACL: Codable, Sendable, Equatable, Hashable {
    /// `publishClientSend`, `publishClientReceive`, `subscribeLiteral`, `subscribePattern`.
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

/// Compiles policy documents into per-device dynsec roles; variables and `when` conditions are resolved at compile
/// time for the one device.
///
/// Mapping (see ``DynsecSemantics`` for how the broker matches; ``PolicyEvaluator`` decides the same way):
/// - `mqtt:publish` → `publishClientSend`, `mqtt:receive` → `publishClientReceive`: denies at priority 100, allows at
///   10, so a deny always wins; an allow equal to a deny is dropped.
/// - `mqtt:subscribe`: a deny on a topic name (≤ 8 levels) becomes `subscribeLiteral` denies for every filter that can
///   match that topic (``DynsecSemantics/generalizations(of:)``); a deny with wildcards becomes a `subscribePattern`
///   deny (priority 100); an allow becomes a `subscribePattern` allow (priority 10) unless it overlaps a deny with
///   wildcards or is `/#`, in which case it grants no subscription.
/// - `mqtt:connect` is no ACL: ``mayConnect(deviceID:groups:documents:)`` says whether the device gets a client at all.
///
/// The broker's default access is deny for send, receive and subscribe.
public enum DynsecCompiler {
    /// Role name for a device.
    public static func roleName(for deviceID: String) -> String { "device-\(deviceID)" }

    /// Whether `deviceID` (member of `groups`) may connect to the broker at all: `mqtt:connect` on `client:<id>` is
    /// allowed. A device that may not gets no dynsec client.
    public static func mayConnect(deviceID: String, groups: [String], documents: [PolicyDocument]) -> Bool {
        compiled(documents).allows(device: deviceID, groups: groups, action: "mqtt:connect", name: deviceID)
    }

    /// The role of `deviceID` (member of `groups`) under `documents`. The compiled documents are cached (the last set
    /// compiled), so a fleet-wide sync compiles once.
    public static func role(for deviceID: String, groups: [String], documents: [PolicyDocument]) -> DynsecRole {
        role(for: deviceID, groups: groups, evaluator: compiled(documents))
    }

    /// The evaluator for `documents`, reusing the last one compiled when the documents are equal.
    static func compiled(_ documents: [PolicyDocument]) -> PolicyEvaluator {
        cache.lock.lock()
        defer { cache.lock.unlock() }
        if let last = cache.last, last.documents == documents { return last.evaluator }
        let evaluator = PolicyEvaluator(documents: documents)
        cache.last = (documents, evaluator)
        return evaluator
    }

    /// The last compiled documents.
    final class Cache: @unchecked Sendable {
        // @unchecked: `last` is only touched under `lock`.
        let lock = NSLock()
        var last: (documents: [PolicyDocument], evaluator: PolicyEvaluator)?
    }

    static let cache = Cache()

    /// The role of `deviceID` under an already compiled evaluator (compile once for a whole fleet).
    public static func role(for deviceID: String, groups: [String], evaluator: PolicyEvaluator) -> DynsecRole {
        let principal = PolicyPrincipal.device(id: deviceID, groups: groups)
        var acls = Set<DynsecACL>()
        for (action, acltype) in [("mqtt:publish", "publishClientSend"), ("mqtt:receive", "publishClientReceive")] {
            let grants = evaluator.grants(principal, action, kind: .topic)
            let denied = Set(grants.filter { $0.effect == .deny }.map(\.filter))
            for grant in grants where grant.effect == .deny || !denied.contains(grant.filter) {
                acls.insert(DynsecACL(acltype: acltype, topic: grant.filter, priority: grant.effect == .deny ? 100 : 10, allow: grant.effect == .allow))
            }
        }
        let subscribe = evaluator.grants(principal, "mqtt:subscribe", kind: .topic)
        let patternDenies = subscribe.filter { $0.effect == .deny && !DynsecSemantics.isLiteralDeny($0.filter) }
        for grant in subscribe {
            if grant.effect == .deny {
                if DynsecSemantics.isLiteralDeny(grant.filter) {
                    for literal in DynsecSemantics.generalizations(of: grant.filter) {
                        acls.insert(DynsecACL(acltype: "subscribeLiteral", topic: literal, priority: 100, allow: false))
                    }
                } else {
                    acls.insert(DynsecACL(acltype: "subscribePattern", topic: grant.filter, priority: 100, allow: false))
                }
            } else if PolicyEvaluator.usableForSubscribe(grant.filter, patternDenies: patternDenies) {
                acls.insert(DynsecACL(acltype: "subscribePattern", topic: grant.filter, priority: 10, allow: true))
            }
        }
        return DynsecRole(
            rolename: roleName(for: deviceID),
            acls: acls.sorted { ($0.acltype, $0.topic, $0.priority, $0.allow ? 1 : 0) < ($1.acltype, $1.topic, $1.priority, $1.allow ? 1 : 0) })
    }
}
