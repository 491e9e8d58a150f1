/// A validated device identifier.
///
/// The naming rule (DESIGN.md "Naming and topics"): lowercase `[a-z0-9][a-z0-9-]{2,62}`, so 3 to 63
/// characters. The certificate CN equals the device id, and Mosquitto takes the CN as the MQTT username,
/// so names reserved for services and administrators can never be device ids: a device certificate with
/// CN `admin` would otherwise inherit the administrator's broker rights.
public struct DeviceID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The identifier text, already validated.
    public let rawValue: String

    /// Names that are never issued to a device. Compared after lowercasing.
    ///
    /// Besides exact matches, any id starting with `warden-` or `mosquitto` is reserved for Warden's own
    /// service identities (for example the broker's dynamic-security control client).
    public static let reservedNames: Set<String> = [
        "admin", "administrator", "root", "warden", "mosquitto", "broker", "server", "service",
        "system", "sys", "control", "dynsec", "operator", "operators", "authority", "ca", "localhost",
        "anonymous", "guest", "nobody", "superuser", "support", "default", "everyone", "all", "any",
    ]

    /// Prefixes reserved for Warden's own service identities.
    public static let reservedPrefixes: [String] = ["warden-", "mosquitto", "$"]

    /// Validates `text` against the naming rule and the reserved names.
    /// - Throws: ``WardenError`` with code `.badInput` for malformed text, `.policyViolation` for reserved names.
    public init(_ text: String) throws {
        try DeviceID.validate(text)
        self.rawValue = text
    }

    /// Checks `text` without constructing a value; the same rules as ``init(_:)``.
    public static func validate(_ text: String) throws {
        let shown = text.count > 80 ? String(text.prefix(80)) + "…" : text
        for forbidden: Character in ["+", "#", "/"] where text.contains(forbidden) {
            throw WardenError.policy("device id '\(shown)' contains '\(forbidden)', which is never allowed in a certificate CN")
        }
        let bytes = Array(text.utf8)
        guard (3...63).contains(bytes.count) else {
            throw WardenError.badInput("device id '\(shown)' must be 3 to 63 characters long")
        }
        func isLowerAlnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        guard isLowerAlnum(bytes[0]) else {
            throw WardenError.badInput("device id '\(shown)' must start with a lowercase letter or digit")
        }
        guard bytes.allSatisfy({ isLowerAlnum($0) || $0 == 0x2D }) else {
            throw WardenError.badInput("device id '\(shown)' may contain only lowercase letters, digits and '-'")
        }
        if reservedNames.contains(text) || reservedPrefixes.contains(where: { text.hasPrefix($0) }) {
            throw WardenError.policy("device id '\(shown)' is a reserved service or administrator name")
        }
    }

    public var description: String { rawValue }

    public static func < (lhs: DeviceID, rhs: DeviceID) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
