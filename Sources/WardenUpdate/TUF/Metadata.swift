import Foundation
import WardenCore
import WardenPKI

/// The four top-level TUF roles (TUF 1.0 §2.1).
public enum TUFRoleName: String, Sendable, CaseIterable, Codable {
    /// Signs the keys of every top-level role; 2 of 3 offline keys in Warden.
    case root
    /// Lists the firmware images (target files) with lengths, hashes and custom fields.
    case targets
    /// Pins the version of the targets metadata (mix-and-match protection).
    case snapshot
    /// Pins the current snapshot, re-signed often (freeze protection).
    case timestamp
}

/// The fields every role's `signed` object has (TUF 1.0 §4.2): `_type`, `spec_version`, `version`, `expires`.
public protocol TUFPayload: Sendable {
    /// The role whose `_type` this payload carries.
    static var role: TUFRoleName { get }
    /// The metadata version (≥ 1), incremented on every change.
    var version: Int64 { get set }
    /// When the metadata stops being trustworthy.
    var expires: Date { get set }
    /// The role-specific fields (without the common ones).
    var roleFields: [String: JSONValue] { get }
    /// Parses the role-specific fields of a `signed` object whose common fields are already checked.
    init(version: Int64, expires: Date, signed: JSONValue) throws
}

extension TUFPayload {
    /// The complete `signed` object.
    public var signedJSON: JSONValue {
        var fields = roleFields
        fields["_type"] = .string(Self.role.rawValue)
        fields["spec_version"] = .string(TUFSpec.version)
        fields["version"] = .int(version)
        fields["expires"] = .string(TUFTime.format(expires))
        return .object(fields)
    }

    /// Parses and checks a `signed` object: the `_type` must be this role, `spec_version` must be 1.x.
    public init(signed: JSONValue) throws {
        guard case .object = signed else { throw WardenError.badInput("\(Self.role.rawValue) metadata: 'signed' is not an object") }
        guard signed["_type"]?.stringValue == Self.role.rawValue else {
            throw WardenError.badInput(
                "metadata of type '\(signed["_type"]?.stringValue ?? "?")' given where \(Self.role.rawValue) metadata was expected")
        }
        guard let spec = signed["spec_version"]?.stringValue, spec.split(separator: ".").first == "1" else {
            throw WardenError.badInput("\(Self.role.rawValue) metadata has an unsupported spec_version")
        }
        guard let version = signed["version"]?.intValue, version >= 1 else {
            throw WardenError.badInput("\(Self.role.rawValue) metadata has no positive version")
        }
        guard let expiresText = signed["expires"]?.stringValue else {
            throw WardenError.badInput("\(Self.role.rawValue) metadata has no expires")
        }
        try self.init(version: version, expires: try TUFTime.parse(expiresText), signed: signed)
    }
}

/// Root metadata (TUF 1.0 §4.3): the keys and thresholds of the four roles.
public struct RootMetadata: TUFPayload, Equatable {
    /// The role this payload belongs to.
    public static let role = TUFRoleName.root
    /// The metadata version.
    public var version: Int64
    /// When the metadata expires.
    public var expires: Date
    /// Whether file names carry version or hash prefixes (Warden always writes true).
    public var consistentSnapshot: Bool
    /// Every key any role uses, by key id.
    public var keys: [String: TUFKey]
    /// The four top-level roles.
    public var roles: [TUFRoleName: TUFRole]

    /// Creates root metadata.
    public init(version: Int64, expires: Date, consistentSnapshot: Bool = true, keys: [String: TUFKey], roles: [TUFRoleName: TUFRole]) {
        self.version = version
        self.expires = expires
        self.consistentSnapshot = consistentSnapshot
        self.keys = keys
        self.roles = roles
    }

    /// The role-specific fields of `signed`.
    public var roleFields: [String: JSONValue] {
        [
            "consistent_snapshot": .bool(consistentSnapshot),
            "keys": .object(keys.mapValues(\.json)),
            "roles": .object(Dictionary(uniqueKeysWithValues: roles.map { ($0.key.rawValue, $0.value.json) })),
        ]
    }

    /// Parses the role-specific fields of `signed`.
    public init(version: Int64, expires: Date, signed: JSONValue) throws {
        guard let keysObject = signed["keys"]?.objectValue, let rolesObject = signed["roles"]?.objectValue else {
            throw WardenError.badInput("root metadata lacks keys or roles")
        }
        var keys: [String: TUFKey] = [:]
        for (id, value) in keysObject { keys[id] = try TUFKey(json: value) }
        var roles: [TUFRoleName: TUFRole] = [:]
        for name in TUFRoleName.allCases {
            guard let value = rolesObject[name.rawValue] else { throw WardenError.badInput("root metadata lacks the \(name.rawValue) role") }
            roles[name] = try TUFRole(json: value, name: name.rawValue)
        }
        self.init(
            version: version, expires: expires, consistentSnapshot: signed["consistent_snapshot"]?.boolValue ?? false, keys: keys,
            roles: roles)
    }

    /// The role's key ids that have a key entry.
    public func role(_ name: TUFRoleName) -> TUFRole { roles[name] ?? TUFRole(keyIDs: [], threshold: 1) }
}

/// What snapshot and timestamp metadata say about another metadata file (TUF 1.0 §4.4 "METAFILES").
public struct MetaFileInfo: Sendable, Equatable {
    /// The version of the referenced metadata.
    /// The metadata version.
    public var version: Int64
    /// Its length in bytes, if pinned.
    public var length: Int64?
    /// Its hashes (algorithm → hex), if pinned.
    public var hashes: [String: String]?

    /// Creates an entry.
    public init(version: Int64, length: Int64? = nil, hashes: [String: String]? = nil) {
        self.version = version
        self.length = length
        self.hashes = hashes
    }

    var json: JSONValue {
        var fields: [String: JSONValue] = ["version": .int(version)]
        if let length { fields["length"] = .int(length) }
        if let hashes { fields["hashes"] = .object(hashes.mapValues { .string($0) }) }
        return .object(fields)
    }

    init(json: JSONValue, name: String) throws {
        guard let version = json["version"]?.intValue, version >= 1 else {
            throw WardenError.badInput("meta entry '\(name)' has no positive version")
        }
        self.version = version
        if let length = json["length"] {
            guard let value = length.intValue, value >= 0 else { throw WardenError.badInput("meta entry '\(name)' has a bad length") }
            self.length = value
        }
        if let hashes = json["hashes"] { self.hashes = try parseHashes(hashes, what: "meta entry '\(name)'") }
    }

    /// Checks `bytes` against the pinned length and hashes (mix-and-match and endless-data protection).
    public func check(_ bytes: [UInt8], name: String) throws {
        if let length, Int64(bytes.count) != length {
            throw WardenError(.verificationFailed, "\(name) is \(bytes.count) bytes, but \(length) were pinned")
        }
        if let hashes { try checkHashes(hashes, of: bytes, name: name) }
    }
}

/// A target file entry (TUF 1.0 §4.5 "TARGETS"): length, hashes and Warden's custom fields.
public struct TargetFileInfo: Sendable, Equatable {
    /// Length in bytes.
    public var length: Int64
    /// Hashes, algorithm (`sha256`, `sha512`) → hex.
    public var hashes: [String: String]
    /// The `custom` object, if any (Warden: version, hardware, release_counter, block_size, merkle_root).
    public var custom: JSONValue?

    /// Creates an entry.
    public init(length: Int64, hashes: [String: String], custom: JSONValue?) {
        self.length = length
        self.hashes = hashes
        self.custom = custom
    }

    var json: JSONValue {
        var fields: [String: JSONValue] = ["length": .int(length), "hashes": .object(hashes.mapValues { .string($0) })]
        if let custom { fields["custom"] = custom }
        return .object(fields)
    }

    init(json: JSONValue, name: String) throws {
        guard let length = json["length"]?.intValue, length >= 0, let hashes = json["hashes"] else {
            throw WardenError.badInput("target '\(name.prefix(100))' lacks a length or hashes")
        }
        self.length = length
        self.hashes = try parseHashes(hashes, what: "target '\(name.prefix(100))'")
        guard !self.hashes.isEmpty else { throw WardenError.badInput("target '\(name.prefix(100))' has no hashes") }
        custom = json["custom"]
    }

    /// Checks downloaded bytes: exact length and every listed hash (arbitrary-software protection).
    /// - Throws: `.verificationFailed`.
    public func verify(_ bytes: [UInt8], name: String) throws {
        guard Int64(bytes.count) == length else {
            throw WardenError(.verificationFailed, "target '\(name)' is \(bytes.count) bytes, but its metadata says \(length)")
        }
        try checkHashes(hashes, of: bytes, name: "target '\(name)'")
    }

    /// The Warden custom field `version` (a string), if present.
    public var firmwareVersion: String? { custom?["version"]?.stringValue }
    /// The Warden custom field `release_counter`, if present.
    public var releaseCounter: Int64? { custom?["release_counter"]?.intValue }
    /// The Warden custom field `hardware`, if present.
    public var hardware: [String] { custom?["hardware"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    /// The Warden custom field `block_size`, if present.
    public var blockSize: Int64? { custom?["block_size"]?.intValue }
    /// The Warden custom field `merkle_root` (hex), if present.
    public var merkleRoot: String? { custom?["merkle_root"]?.stringValue }
}

/// Targets metadata (TUF 1.0 §4.5). Warden does not delegate; delegations in parsed input are kept but not followed.
public struct TargetsMetadata: TUFPayload, Equatable {
    /// The role this payload belongs to.
    public static let role = TUFRoleName.targets
    /// The metadata version.
    public var version: Int64
    /// When the metadata expires.
    public var expires: Date
    /// Target path → entry.
    public var targets: [String: TargetFileInfo]
    /// The `delegations` object, if any (kept verbatim, not followed).
    public var delegations: JSONValue?

    /// Creates targets metadata.
    public init(version: Int64, expires: Date, targets: [String: TargetFileInfo]) {
        self.version = version
        self.expires = expires
        self.targets = targets
    }

    /// The role-specific fields of `signed`.
    public var roleFields: [String: JSONValue] {
        var fields: [String: JSONValue] = ["targets": .object(targets.mapValues(\.json))]
        if let delegations { fields["delegations"] = delegations }
        return fields
    }

    /// Parses the role-specific fields of `signed`.
    public init(version: Int64, expires: Date, signed: JSONValue) throws {
        guard let object = signed["targets"]?.objectValue else { throw WardenError.badInput("targets metadata lacks 'targets'") }
        var targets: [String: TargetFileInfo] = [:]
        targets.reserveCapacity(object.count)
        for (name, value) in object { targets[name] = try TargetFileInfo(json: value, name: name) }
        self.init(version: version, expires: expires, targets: targets)
        delegations = signed["delegations"]
    }
}

/// Snapshot metadata (TUF 1.0 §4.4): the version of every targets metadata file.
public struct SnapshotMetadata: TUFPayload, Equatable {
    /// The role this payload belongs to.
    public static let role = TUFRoleName.snapshot
    /// The metadata version.
    public var version: Int64
    /// When the metadata expires.
    public var expires: Date
    /// File name (`targets.json`) → entry.
    public var meta: [String: MetaFileInfo]

    /// Creates snapshot metadata.
    public init(version: Int64, expires: Date, meta: [String: MetaFileInfo]) {
        self.version = version
        self.expires = expires
        self.meta = meta
    }

    /// The role-specific fields of `signed`.
    public var roleFields: [String: JSONValue] { ["meta": .object(meta.mapValues(\.json))] }

    /// Parses the role-specific fields of `signed`.
    public init(version: Int64, expires: Date, signed: JSONValue) throws {
        guard let object = signed["meta"]?.objectValue else { throw WardenError.badInput("snapshot metadata lacks 'meta'") }
        var meta: [String: MetaFileInfo] = [:]
        for (name, value) in object { meta[name] = try MetaFileInfo(json: value, name: name) }
        self.init(version: version, expires: expires, meta: meta)
    }
}

/// Timestamp metadata (TUF 1.0 §4.6): the current snapshot's version, length and hashes.
public struct TimestampMetadata: TUFPayload, Equatable {
    /// The role this payload belongs to.
    public static let role = TUFRoleName.timestamp
    /// The metadata version.
    public var version: Int64
    /// When the metadata expires.
    public var expires: Date
    /// The `snapshot.json` entry.
    public var snapshot: MetaFileInfo

    /// Creates timestamp metadata.
    public init(version: Int64, expires: Date, snapshot: MetaFileInfo) {
        self.version = version
        self.expires = expires
        self.snapshot = snapshot
    }

    /// The role-specific fields of `signed`.
    public var roleFields: [String: JSONValue] { ["meta": .object(["snapshot.json": snapshot.json])] }

    /// Parses the role-specific fields of `signed`.
    public init(version: Int64, expires: Date, signed: JSONValue) throws {
        guard let entry = signed["meta"]?["snapshot.json"] else { throw WardenError.badInput("timestamp metadata lacks meta snapshot.json") }
        self.init(version: version, expires: expires, snapshot: try MetaFileInfo(json: entry, name: "snapshot.json"))
    }
}

/// The hash algorithms Warden computes and checks.
public enum TUFHash {
    /// `algorithm → hex` for sha256 and sha512 of `bytes`.
    public static func hashes(of bytes: [UInt8]) -> [String: String] {
        ["sha256": Digest.hex(Digest.sha256(bytes)), "sha512": Digest.hex(Digest.sha512(bytes))]
    }
}

func parseHashes(_ json: JSONValue, what: String) throws -> [String: String] {
    guard let object = json.objectValue else { throw WardenError.badInput("\(what): hashes is not an object") }
    return try object.mapValues {
        guard let hex = $0.stringValue else { throw WardenError.badInput("\(what): a hash is not a string") }
        return hex
    }
}

/// Every listed hash must be a supported algorithm and match; unknown algorithms are refused rather than skipped.
func checkHashes(_ hashes: [String: String], of bytes: [UInt8], name: String) throws {
    for (algorithm, expected) in hashes {
        let actual: [UInt8]
        switch algorithm {
        case "sha256": actual = Digest.sha256(bytes)
        case "sha512": actual = Digest.sha512(bytes)
        default: throw WardenError(.verificationFailed, "\(name) is pinned with the unsupported hash algorithm '\(algorithm.prefix(20))'")
        }
        guard let expectedBytes = Digest.bytes(fromHex: expected), expectedBytes == actual else {
            throw WardenError(.verificationFailed, "\(name) does not match its pinned \(algorithm) hash")
        }
    }
}
