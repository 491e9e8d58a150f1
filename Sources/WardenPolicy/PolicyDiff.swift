/// One change of permission between two policy sets, for one principal pattern and action.
public struct PermissionChange: Sendable, Equatable, Codable {
    /// `gain` or `loss`.
    public var change: String
    /// `device:*`, `device:<id>`, `group:<name>`, `role:<name>`.
    public var principal: String
    /// The action.
    public var action: String
    /// The resource gained or lost (`topic:…`, may use `${device.id}`).
    public var resource: String
    /// How: `allowed` (a new allow not covered before) or `undenied` (a deny removed over an allow), and symmetric for
    /// losses: `no longer allowed`, `denied`.
    public var how: String

    /// Creates a change.
    public init(change: String, principal: String, action: String, resource: String, how: String) {
        self.change = change
        self.principal = principal
        self.action = action
        self.resource = resource
        self.how = how
    }
}

/// Exact permission diff by topic-filter algebra (no sampling).
///
/// For every principal pattern named in either set and every action, the effective grants of that pattern are the
/// statements naming it plus, for devices and groups, those naming `device:*`. A resource is gained when a NEW allow is
/// not covered by the OLD allows (and not wholly denied in NEW), or an OLD deny that is not covered by the NEW denies
/// overlapped a NEW allow; losses are symmetric. `${device.id}` templates are compared for the same device.
public enum PolicyDiff {
    static let probeID = "diff-device"

    struct Grants {
        var allows: [ResourcePattern] = []
        var denies: [ResourcePattern] = []
    }

    static func grants(_ documents: [PolicyDocument], principal: Principal, action: String) -> Grants {
        var grants = Grants()
        for document in documents {
            for statement in document.statements where statement.actions.contains(action) {
                let principals = statement.principals.compactMap { try? Principal.parse($0, at: "") }
                guard principals.contains(where: { $0 == principal || ($0 == .anyDevice && principal.isDevicePattern) }) else { continue }
                for resource in statement.resources.compactMap({ try? ResourcePattern.parse($0, at: "") }) where resource.applies(to: action) {
                    if case .role = principal, resource.usesDeviceID { continue }
                    if statement.effect == .allow { grants.allows.append(resource) } else { grants.denies.append(resource) }
                }
            }
        }
        return grants
    }

    /// The changes from `old` to `new`, sorted by principal, action, change, resource.
    public static func diff(old: [PolicyDocument], new: [PolicyDocument]) -> [PermissionChange] {
        var principals: [String: Principal] = [:]
        var actions = Set<String>()
        for document in old + new {
            for statement in document.statements {
                for text in statement.principals { if let p = try? Principal.parse(text, at: "") { principals[text] = p } }
                actions.formUnion(statement.actions)
            }
        }
        var changes: [PermissionChange] = []
        for (name, principal) in principals.sorted(by: { $0.key < $1.key }) {
            for action in actions.sorted() {
                let before = grants(old, principal: principal, action: action)
                let after = grants(new, principal: principal, action: action)
                func f(_ r: ResourcePattern) -> String { r.filter(deviceID: probeID) ?? r.template }
                func sameKind(_ list: [ResourcePattern], _ r: ResourcePattern) -> [String] { list.filter { $0.kind == r.kind }.map(f) }
                func record(_ change: String, _ r: ResourcePattern, _ how: String) {
                    let entry = PermissionChange(change: change, principal: name, action: action, resource: r.text, how: how)
                    if !changes.contains(entry) { changes.append(entry) }
                }
                // Gains.
                for allow in after.allows {
                    let filter = f(allow)
                    if !TopicFilter.covered(filter, by: sameKind(before.allows, allow)),
                        !TopicFilter.covered(filter, by: sameKind(after.denies, allow)) {
                        record("gain", allow, "allowed")
                    }
                }
                for deny in before.denies where !TopicFilter.covered(f(deny), by: sameKind(after.denies, deny)) {
                    if sameKind(after.allows, deny).contains(where: { TopicFilter.intersects($0, f(deny)) }) { record("gain", deny, "undenied") }
                }
                // Losses.
                for allow in before.allows {
                    let filter = f(allow)
                    if !TopicFilter.covered(filter, by: sameKind(after.allows, allow)),
                        !TopicFilter.covered(filter, by: sameKind(before.denies, allow)) {
                        record("loss", allow, "no longer allowed")
                    }
                }
                for deny in after.denies where !TopicFilter.covered(f(deny), by: sameKind(before.denies, deny)) {
                    if sameKind(before.allows, deny).contains(where: { TopicFilter.intersects($0, f(deny)) }) { record("loss", deny, "denied") }
                }
            }
        }
        return changes
    }
}

extension PolicyDiff {
    /// The devices of `fleet` (id and groups) that a principal pattern names, sorted: all for `device:*`, the members
    /// for `group:<name>`, the one for `device:<id>` (if known), none for `role:`.
    public static func affected(principal: String, fleet: [(id: String, groups: [String])]) -> [String] {
        guard let pattern = try? Principal.parse(principal, at: "") else { return [] }
        return fleet.filter { pattern.matches(deviceID: $0.id, groups: $0.groups) }.map(\.id).sorted()
    }
}

extension Principal {
    var isDevicePattern: Bool {
        if case .role = self { return false }
        return true
    }
}
