import WardenCore

/// Operator roles for Warden's HTTP API: who may enroll, revoke, read the audit log, add firmware or start a rollout.
///
/// An operator authenticates with an operator client certificate (CN `warden-op-<name>`) that carries its role; the
/// API asks the evaluator whether `role:<role>` may perform the route's `api:` action. The built-in document below
/// (identical to the shipped `policies/operators.json`; a test keeps them equal) is always in force next to the
/// fleet's documents, so a fleet document can narrow a role with an explicit deny but never needs to restate it.
/// Devices (`device:*`) are denied every `api:` action explicitly, so no fleet document can grant them one.
public enum OperatorRoles {
    /// Every `api:` action the HTTP API checks.
    public static let apiActions: [String] = [
        "api:audit.read", "api:device.enroll", "api:device.list", "api:device.revoke", "api:firmware.add",
        "api:firmware.list", "api:policy.apply", "api:policy.read", "api:rollout.control", "api:rollout.create",
    ]

    /// The built-in roles.
    public static let builtInRoles: [String] = ["admin", "auditor", "release-manager"]

    /// The built-in operator roles document.
    public static let document = PolicyDocument(
        version: 1,
        description: "Operator roles for the HTTP API. admin: every api: action; auditor: read-only (audit log, device list, policies); release-manager: firmware and rollouts. Devices never get an api: action.",
        statements: [
            PolicyDocument.Statement(
                sid: "role-admin-all", effect: .allow, principals: ["role:admin"], actions: apiActions,
                resources: ["device:*", "firmware:*"]),
            PolicyDocument.Statement(
                sid: "role-auditor-read", effect: .allow, principals: ["role:auditor"],
                actions: ["api:audit.read", "api:device.list", "api:policy.read"], resources: ["device:*"]),
            PolicyDocument.Statement(
                sid: "role-release-manager", effect: .allow, principals: ["role:release-manager"],
                actions: ["api:device.list", "api:firmware.add", "api:firmware.list", "api:rollout.control", "api:rollout.create"],
                resources: ["device:*", "firmware:*"]),
            PolicyDocument.Statement(
                sid: "devices-no-api", effect: .deny, principals: ["device:*"], actions: apiActions,
                resources: ["device:*", "firmware:*"]),
        ])

    /// Source name of ``document`` in explanations.
    public static let source = "built-in operators"

    /// Validates a role name: 1–40 of `[a-z0-9.-]`, starting with a letter or digit.
    public static func validate(role: String) throws {
        let bytes = Array(role.utf8)
        let ok = (1...40).contains(bytes.count)
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2E }
            && bytes[0] != 0x2D && bytes[0] != 0x2E
        guard ok else {
            throw WardenError.badInput("role '\(role.prefix(80))' must be 1 to 40 of a-z, 0-9, '.', '-', starting with a letter or digit")
        }
    }

    /// Roles some statement of `documents` (or the built-in roles document) names.
    public static func knownRoles(in documents: [PolicyDocument]) -> Set<String> {
        var roles = Set(builtInRoles)
        for document in documents {
            for statement in document.statements {
                for principal in statement.principals where principal.hasPrefix("role:") {
                    roles.insert(String(principal.dropFirst("role:".count)))
                }
            }
        }
        return roles
    }

    /// The evaluator for the HTTP API: `set`'s documents plus the operator roles.
    public static func evaluator(for set: PolicySet) -> PolicyEvaluator {
        PolicyEvaluator(documents: set.documents + [document], sources: set.sources + [source])
    }
}
