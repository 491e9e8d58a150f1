import WardenCore

/// The optional `when` of a statement: conditions on the requesting device, all of which must hold.
///
/// ```json
/// "when": {"groups.any": ["pumps", "north"], "groups.none": ["quarantine"], "id.prefix": ["pump-"]}
/// ```
///
/// - `groups.any`: the device is in at least one of the groups;
/// - `groups.none`: the device is in none of the groups;
/// - `id.prefix`: the device id starts with one of the prefixes.
///
/// Every key is optional but the object must have at least one; each value is a non-empty array of non-empty strings.
/// Unknown keys are errors. A statement with a `when` never applies to a `role:` principal.
public struct PolicyCondition: Codable, Sendable, Equatable {
    /// `groups.any`.
    public var groupsAny: [String]?
    /// `groups.none`.
    public var groupsNone: [String]?
    /// `id.prefix`.
    public var idPrefix: [String]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case groupsAny = "groups.any"
        case groupsNone = "groups.none"
        case idPrefix = "id.prefix"
    }

    /// Creates a condition.
    public init(groupsAny: [String]? = nil, groupsNone: [String]? = nil, idPrefix: [String]? = nil) {
        self.groupsAny = groupsAny
        self.groupsNone = groupsNone
        self.idPrefix = idPrefix
    }

    /// The keys a `when` object may have.
    public static let knownKeys: [String] = CodingKeys.allCases.map(\.rawValue)

    /// Refuses a `when` that is not an object or has an unknown key.
    static func checkKeys(_ value: Any, at: String) throws {
        guard let object = value as? [String: Any] else { throw WardenError.badInput("\(at): 'when' must be an object") }
        if let unknown = object.keys.sorted().first(where: { !knownKeys.contains($0) }) {
            throw WardenError.badInput("\(at): unknown condition key '\(unknown)' in 'when' (known: \(knownKeys.joined(separator: ", ")))")
        }
    }

    /// Semantic checks: at least one key, non-empty lists of non-empty strings.
    func validate(at: String) throws {
        let lists: [(String, [String]?)] = [("groups.any", groupsAny), ("groups.none", groupsNone), ("id.prefix", idPrefix)]
        guard lists.contains(where: { $0.1 != nil }) else {
            throw WardenError.badInput("\(at): 'when' has no condition (use \(Self.knownKeys.joined(separator: ", ")))")
        }
        for (key, list) in lists {
            guard let list else { continue }
            guard !list.isEmpty, list.count <= 256, list.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 256 }) else {
                throw WardenError.badInput("\(at): condition '\(key)' must be a non-empty list of non-empty names")
            }
        }
    }

    /// Whether the device `deviceID` in `groups` satisfies every condition.
    public func holds(deviceID: String, groups: [String]) -> Bool {
        if let any = groupsAny, !any.contains(where: groups.contains) { return false }
        if let none = groupsNone, none.contains(where: groups.contains) { return false }
        if let prefixes = idPrefix, !prefixes.contains(where: { deviceID.hasPrefix($0) }) { return false }
        return true
    }
}
