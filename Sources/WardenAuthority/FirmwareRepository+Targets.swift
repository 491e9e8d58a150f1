import Foundation
import WardenCore
import WardenPKI
import WardenStore
import WardenUpdate

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One firmware release as the targets metadata lists it.
public struct FirmwareRelease: Codable, Sendable, Equatable {
    /// The TUF target path, `<name>/<version>`.
    public var target: String
    /// Firmware name.
    public var name: String
    /// Firmware version (dot-separated numbers).
    public var version: String
    /// Hardware ids it runs on.
    public var hardware: [String]
    /// Monotonic per-name counter the agent uses for anti-rollback.
    public var releaseCounter: Int64
    /// Length in bytes.
    public var length: Int64
    /// Hex SHA-256.
    public var sha256: String
    /// Hex SHA-512.
    public var sha512: String
    /// Block size of the Merkle index (bytes).
    public var blockSize: Int64
    /// Hex Merkle root of the per-block hashes.
    public var merkleRoot: String

    enum CodingKeys: String, CodingKey {
        case target, name, version, hardware, length, sha256, sha512
        case releaseCounter = "release_counter"
        case blockSize = "block_size"
        case merkleRoot = "merkle_root"
    }

    /// Reads a target entry written by ``FirmwareRepository/add(image:name:version:hardware:blockSize:releaseCounter:passphrase:registry:actor:now:)``.
    public init?(target: String, info: TargetFileInfo) {
        guard let custom = info.custom, let name = custom["name"]?.stringValue, let version = info.firmwareVersion,
            let counter = info.releaseCounter, let blockSize = info.blockSize, let merkle = info.merkleRoot
        else { return nil }
        self.target = target
        self.name = name
        self.version = version
        hardware = info.hardware
        releaseCounter = counter
        length = info.length
        sha256 = info.hashes["sha256"] ?? ""
        sha512 = info.hashes["sha512"] ?? ""
        self.blockSize = blockSize
        merkleRoot = merkle
    }
}

extension FirmwareRepository {
    /// The largest image accepted by `firmware add`.
    public static let maximumImageBytes = 1024 * 1024 * 1024
    /// The default block size of the Merkle index.
    public static let defaultBlockSize = 64 * 1024

    /// The TUF target path of `name`@`version`.
    public static func targetPath(name: String, version: String) -> String { name + "/" + version }

    /// Validates a firmware name: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
    public static func validateName(_ name: String) throws {
        try FirmwareNaming.validateName(name)
    }

    /// Parses a version: 1 to 4 dot-separated decimal numbers (`1.2.3`), compared numerically.
    public static func parseVersion(_ version: String) throws -> [Int] {
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        let numbers = parts.map { part -> Int? in
            guard (1...9).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(part)
        }
        guard (1...4).contains(parts.count), numbers.allSatisfy({ $0 != nil }) else {
            throw WardenError.badInput("firmware version '\(version.prefix(40))' must be 1 to 4 dot-separated numbers, e.g. 1.2.3")
        }
        return numbers.map { $0! }
    }

    static func compareVersions(_ lhs: [Int], _ rhs: [Int]) -> Int {
        for index in 0..<max(lhs.count, rhs.count) {
            let a = index < lhs.count ? lhs[index] : 0
            let b = index < rhs.count ? rhs[index] : 0
            if a != b { return a < b ? -1 : 1 }
        }
        return 0
    }

    /// Validates a hardware id: 1–64 of `[A-Za-z0-9._-]`.
    public static func validateHardware(_ id: String) throws {
        try FirmwareNaming.validateHardware(id)
    }

    /// The releases in the published targets metadata, sorted by name then release counter.
    public func list() throws -> [FirmwareRelease] {
        _ = try currentRoot()
        let targets = try currentState().targets.payload.targets
        return targets.compactMap { FirmwareRelease(target: $0.key, info: $0.value) }
            .sorted { ($0.name, $0.releaseCounter) < ($1.name, $1.releaseCounter) }
    }

    /// `warden firmware add`: stores the image under its sha256 and publishes targets, snapshot and timestamp
    /// metadata listing it with length, sha256, sha512 and `custom` {name, version, hardware, release_counter,
    /// block_size, merkle_root}.
    ///
    /// Refused: a duplicate name@version (`.alreadyExists`), a version not above every published version of that
    /// name or a release counter not above the highest one (`.policyViolation`), bad names, versions, hardware ids
    /// or block sizes (`.badInput`). Atomic: on any error the published metadata is unchanged and a newly stored
    /// image is removed.
    public func add(
        image imagePath: String, name: String, version: String, hardware: [String], blockSize: Int = defaultBlockSize,
        releaseCounter: Int64? = nil, passphrase: [UInt8], registry: Registry?, actor: String, now: Date
    ) throws -> FirmwareRelease {
        try Self.validateName(name)
        let parsedVersion = try Self.parseVersion(version)
        guard !hardware.isEmpty else { throw WardenError.badInput("give at least one --hardware id the image runs on") }
        for id in hardware { try Self.validateHardware(id) }
        guard Set(hardware).count == hardware.count else { throw WardenError.badInput("a --hardware id is given twice") }
        try BlockIndex.validate(blockSize: blockSize)
        let image = try SecureFile.read(imagePath, limit: Self.maximumImageBytes, what: "firmware image")
        guard !image.isEmpty else { throw WardenError.badInput("firmware image '\(imagePath)' is empty") }
        let index = try BlockIndex(image: image, blockSize: blockSize)
        let hashes = TUFHash.hashes(of: image)

        return try locked {
            let root = try currentRoot().payload
            var targets = try currentState().targets.payload.targets
            let path = Self.targetPath(name: name, version: version)
            let sameName = targets.compactMap { FirmwareRelease(target: $0.key, info: $0.value) }.filter { $0.name == name }
            if targets[path] != nil || sameName.contains(where: { $0.version == version }) {
                throw WardenError.alreadyExists("firmware \(name)@\(version) is already published; versions are never replaced")
            }
            for existing in sameName {
                let existingVersion = (try? Self.parseVersion(existing.version)) ?? []
                if Self.compareVersions(parsedVersion, existingVersion) <= 0 {
                    throw WardenError.policy(
                        "firmware \(name)@\(version) is not newer than the published \(name)@\(existing.version); versions only go forward")
                }
            }
            let highest = sameName.map(\.releaseCounter).max() ?? 0
            let counter = releaseCounter ?? highest + 1
            guard counter > highest else {
                throw WardenError.policy("release counter \(counter) is not above \(name)'s highest published counter \(highest)")
            }
            let custom: JSONValue = .object([
                "name": .string(name), "version": .string(version), "hardware": .array(hardware.map { .string($0) }),
                "release_counter": .int(counter), "block_size": .int(Int64(blockSize)), "merkle_root": .string(index.merkleRootHex),
            ])
            let info = TargetFileInfo(length: Int64(image.count), hashes: hashes, custom: custom)
            targets[path] = info

            try SecureFile.ensureDirectory(firmwareDirectory, mode: 0o755)
            let stored = firmwareDirectory + "/" + hashes["sha256"]!
            let existed = SecureFile.mode(of: stored) != nil
            if !existed { try SecureFile.writeAtomically(image, to: stored, mode: 0o644) }
            let signed: [(TUFRoleName, Int64)]
            do {
                signed = try republish([.targets], targets: targets, root: root, passphrase: passphrase, now: now)
            } catch {
                if !existed { unlink(stored) }
                throw error
            }
            let release = FirmwareRelease(target: path, info: info)!
            try audit(
                registry, action: "firmware.add",
                details: [
                    "target": path, "sha256": release.sha256, "length": String(release.length), "release_counter": String(counter),
                    "hardware": hardware.joined(separator: ","), "merkle_root": release.merkleRoot, "signed": Self.describe(signed),
                ], actor: actor, now: now)
            return release
        }
    }
}
