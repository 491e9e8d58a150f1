import Foundation
import WardenCore

/// What was installed into a slot: the firmware's identity from the signed TUF targets metadata (`custom`), and the
/// length and SHA-256 the image must match.
///
/// Stored as `slots/<slot>/manifest.json`, JSON with snake_case keys:
/// ```
/// { "name": "gw-firmware", "version": "1.4.2", "release_counter": 7,
///   "sha256": "<64 lowercase hex digits>", "length": 33554432, "hardware": ["rpi4"],
///   "rollout": 12, "installed_at": 1795000000 }
/// ```
/// `rollout` (the authority's rollout id, if the release came through one) and `installed_at` (unix seconds, set by
/// ``SlotStore/install(image:manifest:)``) may be absent or null. Decoding validates every field
/// (``validate()``), so a manifest that decodes is well-formed.
public struct SlotManifest: Codable, Sendable, Equatable {
    /// Largest manifest accepted, on disk or as input: 64 KiB.
    public static let maximumBytes = 64 * 1024
    /// Largest image accepted: 4 GiB.
    public static let maximumLength = 4 * 1024 * 1024 * 1024

    /// The firmware name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit (the authority's rule).
    public var name: String
    /// The version; see ``FirmwareVersion`` for the accepted form and the ordering.
    public var version: String
    /// The release counter from the signed metadata; non-negative, monotonic per firmware name.
    public var releaseCounter: Int64
    /// SHA-256 of the image, 64 lowercase hex digits.
    public var sha256: String
    /// Length of the image in bytes, 1 to ``maximumLength``.
    public var length: Int
    /// The hardware ids the image runs on: 1 to 64 distinct ids of 1 to 64 of `A-Z a-z 0-9 . _ -`.
    public var hardware: [String]
    /// The authority's rollout id, if the release was delivered by a rollout.
    public var rollout: Int64?
    /// When the image was installed (whole seconds); set by ``SlotStore/install(image:manifest:)``.
    public var installedAt: Date?

    /// Creates a manifest. Nothing is checked here; ``validate()`` (also run by decoding and by
    /// ``SlotStore/install(image:manifest:)``) does.
    public init(
        name: String, version: String, releaseCounter: Int64, sha256: String, length: Int, hardware: [String],
        rollout: Int64? = nil, installedAt: Date? = nil
    ) {
        self.name = name
        self.version = version
        self.releaseCounter = releaseCounter
        self.sha256 = sha256
        self.length = length
        self.hardware = hardware
        self.rollout = rollout
        self.installedAt = installedAt
    }

    /// Checks every field against the rules documented on it.
    /// - Throws: ``WardenError`` `.badInput` naming the first bad field.
    public func validate() throws {
        try Self.validateName(name)
        try FirmwareVersion.validate(version)
        guard releaseCounter >= 0 else { throw WardenError.badInput("manifest release_counter \(releaseCounter) is negative") }
        guard sha256.utf8.count == 64, sha256.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw WardenError.badInput("manifest sha256 '\(sha256.prefix(80))' must be 64 lowercase hex digits")
        }
        guard length > 0, length <= Self.maximumLength else {
            throw WardenError.badInput("manifest length \(length) must be 1 to \(Self.maximumLength) bytes")
        }
        guard (1...64).contains(hardware.count) else { throw WardenError.badInput("manifest hardware must list 1 to 64 ids") }
        for id in hardware { try Self.validateHardware(id) }
        guard Set(hardware).count == hardware.count else { throw WardenError.badInput("manifest hardware lists an id twice") }
        if let rollout, rollout < 0 { throw WardenError.badInput("manifest rollout \(rollout) is negative") }
    }

    /// The firmware-name rule the authority applies too (`WardenCore.FirmwareNaming`): 1 to 64 of `a-z 0-9 . _ -`,
    /// starting with a letter or digit.
    /// - Throws: ``WardenError`` `.badInput`.
    public static func validateName(_ name: String) throws {
        try FirmwareNaming.validateName(name)
    }

    /// The hardware-id rule the authority applies too (`WardenCore.FirmwareNaming`): 1 to 64 of `A-Z a-z 0-9 . _ -`.
    /// - Throws: ``WardenError`` `.badInput`.
    public static func validateHardware(_ id: String) throws {
        try FirmwareNaming.validateHardware(id)
    }

    /// Parses and validates a manifest (at most ``maximumBytes`` of JSON).
    /// - Parameter source: how errors name the input, e.g. the file path.
    /// - Throws: ``WardenError`` `.badInput`.
    public static func decode(_ bytes: [UInt8], source: String) throws -> SlotManifest {
        guard bytes.count <= maximumBytes else {
            throw WardenError.badInput("manifest '\(source)' is larger than \(maximumBytes / 1024) KiB")
        }
        do {
            return try JSONDecoder().decode(SlotManifest.self, from: Data(bytes))
        } catch let error as WardenError {
            throw WardenError.badInput("manifest '\(source)': \(error.message)")
        } catch DecodingError.keyNotFound(let key, _) {
            throw WardenError.badInput("manifest '\(source)' lacks '\(key.stringValue)'")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw WardenError.badInput("manifest '\(source)' has a wrong type for '\(path)'")
        } catch {
            throw WardenError.badInput("manifest '\(source)' is not valid JSON")
        }
    }

    /// The manifest as stored: sorted keys, `installed_at` as unix seconds.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    enum CodingKeys: String, CodingKey {
        case name, version, releaseCounter = "release_counter", sha256, length, hardware, rollout, installedAt = "installed_at"
    }

    /// Decodes and validates (``validate()``); throws ``WardenError`` `.badInput` for a bad field.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        version = try container.decode(String.self, forKey: .version)
        releaseCounter = try container.decode(Int64.self, forKey: .releaseCounter)
        sha256 = try container.decode(String.self, forKey: .sha256)
        length = try container.decode(Int.self, forKey: .length)
        hardware = try container.decode([String].self, forKey: .hardware)
        rollout = try container.decodeIfPresent(Int64.self, forKey: .rollout)
        installedAt = try container.decodeIfPresent(Int64.self, forKey: .installedAt).map { Date(timeIntervalSince1970: TimeInterval($0)) }
        try validate()
    }

    /// Encodes with snake_case keys; `installed_at` as whole unix seconds, absent optionals omitted.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(releaseCounter, forKey: .releaseCounter)
        try container.encode(sha256, forKey: .sha256)
        try container.encode(length, forKey: .length)
        try container.encode(hardware, forKey: .hardware)
        try container.encodeIfPresent(rollout, forKey: .rollout)
        try container.encodeIfPresent(installedAt.map { Int64($0.timeIntervalSince1970.rounded(.down)) }, forKey: .installedAt)
    }
}

/// Firmware version strings and their order.
///
/// A version is 1 to 64 bytes of dot-separated components; each component is 1 or more of `A-Z a-z 0-9 _ + -`
/// (so every version the authority publishes, 1 to 4 dot-separated numbers, is accepted).
///
/// Order: components are compared left to right; two all-digit components compare numerically (leading zeros
/// ignored, no overflow), any other pair compares lexically (byte-wise, ASCII). A missing component counts as `0`,
/// so `1.2` equals `1.2.0` and `1.10` is above `1.9`. Note that `1.2.0-rc1` sorts above `1.2.0` (its last
/// component `0-rc1` is lexically above `0`): pre-releases do not sort first; the release counter is the real order.
public enum FirmwareVersion {
    /// Checks the version form above.
    /// - Throws: ``WardenError`` `.badInput`.
    public static func validate(_ version: String) throws {
        let bytes = Array(version.utf8)
        let ok = (1...64).contains(bytes.count)
            && version.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { component in
                !component.isEmpty && component.utf8.allSatisfy {
                    ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || [0x5F, 0x2B, 0x2D].contains($0)
                }
            }
        guard ok else {
            throw WardenError.badInput(
                "firmware version '\(version.prefix(80))' must be 1 to 64 bytes of dot-separated components of A-Z, a-z, 0-9, '_', '+', '-'")
        }
    }

    /// Compares two versions by the order above: negative if `lhs < rhs`, 0 if equal, positive if `lhs > rhs`.
    public static func compare(_ lhs: String, _ rhs: String) -> Int {
        let left = lhs.split(separator: ".", omittingEmptySubsequences: false)
        let right = rhs.split(separator: ".", omittingEmptySubsequences: false)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? Array(left[index].utf8) : [0x30]
            let b = index < right.count ? Array(right[index].utf8) : [0x30]
            let result = compareComponent(a, b)
            if result != 0 { return result }
        }
        return 0
    }

    private static func compareComponent(_ a: [UInt8], _ b: [UInt8]) -> Int {
        let isDigit = { (byte: UInt8) in byte >= 0x30 && byte <= 0x39 }
        if !a.isEmpty, !b.isEmpty, a.allSatisfy(isDigit), b.allSatisfy(isDigit) {
            let x = Array(a.drop { $0 == 0x30 }), y = Array(b.drop { $0 == 0x30 })
            if x.count != y.count { return x.count < y.count ? -1 : 1 }
            return lexical(x, y)
        }
        return lexical(a, b)
    }

    private static func lexical(_ a: [UInt8], _ b: [UInt8]) -> Int {
        for (x, y) in zip(a, b) where x != y { return x < y ? -1 : 1 }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }
}
