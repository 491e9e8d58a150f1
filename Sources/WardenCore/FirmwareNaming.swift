/// The naming rules for firmware, shared by the authority (`warden firmware add`, rollouts, agent configs) and the
/// agent (slot manifests), so both sides accept exactly the same names.
public enum FirmwareNaming {
    /// Validates a firmware name: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
    /// - Throws: ``WardenError`` `.badInput` naming the value.
    public static func validateName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), bytes.allSatisfy({ isLowerAlnum($0) || [0x2E, 0x5F, 0x2D].contains($0) }),
            isLowerAlnum(bytes[0])
        else {
            throw WardenError.badInput(
                "firmware name '\(name.prefix(80))' must be 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
        }
    }

    /// Validates a hardware id: 1–64 of `[A-Za-z0-9._-]`.
    /// - Throws: ``WardenError`` `.badInput` naming the value.
    public static func validateHardware(_ id: String) throws {
        let bytes = Array(id.utf8)
        guard (1...64).contains(bytes.count),
            bytes.allSatisfy({ isLowerAlnum($0) || ($0 >= 0x41 && $0 <= 0x5A) || [0x2E, 0x5F, 0x2D].contains($0) })
        else {
            throw WardenError.badInput("hardware id '\(id.prefix(80))' must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'")
        }
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool { (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) }
}
