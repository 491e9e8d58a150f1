import Foundation
import WardenCore
import WardenPKI
import WardenUpdate

/// The agent's configuration, as signed by the authority (`warden device config`).
///
/// The file is JSON:
/// ```
/// { "signed": { "type": "warden-agent-config", "spec": 1, "device_id": "gw-1", "version": 3,
///               "issued_at": "2026-…Z", "broker": "mqtts://host:8883", "https_url": "https://host:8443",
///               "trust_bundle": "-----BEGIN CERTIFICATE-----…", "tuf_root": { …root.json… } | null,
///               "pipeline": "<pipeline JSON text>" | null,
///               "hardware": "<hardware id>",                                        (optional)
///               "health_check": {"command": ["/abs/path", "arg"…], "timeout_seconds": 30} (optional) },
///   "signature": { "algorithm": "ecdsa-p256-sha256", "value": "<base64 DER>", "chain": ["<issuing PEM>", "<root PEM>"] } }
/// ```
/// The signature covers the canonical JSON (OLPC canonical form, as TUF signs) of `signed`.
public struct AgentConfig: Sendable, Equatable {
    /// The `type` value of every agent config.
    public static let type = "warden-agent-config"
    /// Largest config file accepted.
    public static let maximumBytes = 1024 * 1024

    /// The device the config is for.
    public let deviceID: DeviceID
    /// The config version, monotonic per device.
    public let version: Int64
    /// The broker URL (`mqtts://host:port`).
    public let broker: String
    /// The authority's HTTPS base URL.
    public let httpsURL: String
    /// The fleet trust bundle (PEM).
    public let trustBundle: String
    /// The trusted TUF root metadata (the file bytes, pretty-printed), if the authority has a firmware repository.
    public let tufRoot: [UInt8]?
    /// The edge-core pipeline (JSON text), if any.
    public let pipeline: String?
    /// The device's hardware id: an OTA target is installed only if its signed `custom.hardware` lists it.
    /// Optional (configs issued before it existed still verify); without it every OTA target is refused.
    public let hardware: String?
    /// The post-install health check (`health_check`); nil: an install is healthy once written. The agent never runs
    /// a command that is not in a verified config.
    public let healthCheck: ConfiguredHealthCheck?

    /// The signed `health_check` of a config: an absolute command path with its arguments (no shell) and a timeout.
    public struct ConfiguredHealthCheck: Sendable, Equatable {
        /// `command[0]` is an absolute path; the rest are its arguments.
        public let command: [String]
        /// Seconds before the check is killed and counted as failed (1 … 3600).
        public let timeoutSeconds: Double

        /// Parses and checks the `health_check` object.
        init(json: JSONValue, what: String) throws {
            guard let array = json["command"]?.arrayValue, !array.isEmpty, array.count <= 64 else {
                throw WardenError.badInput("\(what) has a 'health_check' without a 'command' array of 1 to 64 strings")
            }
            let command = array.compactMap(\.stringValue)
            guard command.count == array.count, command[0].hasPrefix("/"), command.allSatisfy({ $0.utf8.count <= 4096 && !$0.contains("\0") }) else {
                throw WardenError.badInput("\(what) has a 'health_check' command that is not an absolute path with string arguments")
            }
            guard let timeout = json["timeout_seconds"]?.intValue, timeout >= 1, timeout <= 3600 else {
                throw WardenError.badInput("\(what) has a 'health_check' without an integer 'timeout_seconds' of 1 to 3600")
            }
            self.command = command
            self.timeoutSeconds = Double(timeout)
        }
    }

    /// Parses `bytes` and verifies its signature against `trustPEM` before reading any field.
    /// - Throws: `.badInput` (malformed, unsigned), `.signatureInvalid` (tampered), `.verificationFailed` (untrusted signer).
    public static func verify(_ bytes: [UInt8], source: String, trustPEM: [UInt8], trustSource: String, now: Date = Date()) async throws -> AgentConfig {
        let what = "config '\(source)'"
        guard bytes.count <= maximumBytes else { throw WardenError.badInput("\(what) is larger than \(maximumBytes / 1024) KiB") }
        let document = try JSONValue.parse(bytes, what: what)
        guard let signed = document["signed"], signed.objectValue != nil else {
            throw WardenError.badInput("\(what) has no 'signed' object")
        }
        guard let signatureObject = document["signature"]?.objectValue else {
            throw WardenError.badInput("\(what) is not signed (no 'signature')")
        }
        guard let algorithm = signatureObject["algorithm"]?.stringValue, let value = signatureObject["value"]?.stringValue,
            let chain = signatureObject["chain"]?.arrayValue?.compactMap(\.stringValue), !chain.isEmpty
        else {
            throw WardenError.badInput("\(what) has a malformed 'signature' (algorithm, value, chain)")
        }
        try await DocumentVerifier.verify(
            signed.canonicalBytes, signature: DocumentSignature(algorithm: algorithm, value: value, chain: chain),
            trustPEM: trustPEM, trustSource: trustSource, at: now, what: what)
        return try AgentConfig(signed: signed, what: what)
    }

    init(signed: JSONValue, what: String) throws {
        func string(_ key: String) throws -> String {
            guard let value = signed[key]?.stringValue else { throw WardenError.badInput("\(what) lacks the string '\(key)'") }
            return value
        }
        guard try string("type") == Self.type, signed["spec"]?.intValue == 1 else {
            throw WardenError.badInput("\(what) is not a spec 1 \(Self.type)")
        }
        deviceID = try DeviceID(try string("device_id"))
        guard let version = signed["version"]?.intValue, version >= 1 else {
            throw WardenError.badInput("\(what) lacks a positive integer 'version'")
        }
        self.version = version
        broker = try string("broker")
        guard broker.hasPrefix("mqtts://") else { throw WardenError.badInput("\(what) has a broker that is not mqtts://") }
        httpsURL = try string("https_url")
        trustBundle = try string("trust_bundle")
        switch signed["tuf_root"] {
        case nil, .null?: tufRoot = nil
        case let root?: tufRoot = root.prettyBytes
        }
        switch signed["pipeline"] {
        case nil, .null?: pipeline = nil
        case .string(let text)?: pipeline = text
        default: throw WardenError.badInput("\(what) has a 'pipeline' that is not a string")
        }
        switch signed["hardware"] {
        case nil, .null?: hardware = nil
        case .string(let text)? where !text.isEmpty && text.utf8.count <= 64: hardware = text
        default: throw WardenError.badInput("\(what) has a 'hardware' that is not a string of 1 to 64 bytes")
        }
        switch signed["health_check"] {
        case nil, .null?: healthCheck = nil
        case let check?: healthCheck = try ConfiguredHealthCheck(json: check, what: what)
        }
    }
}

/// The agent's persistent state directory (`--state DIR`): its identity, its trust anchor and the config floor.
///
/// - `device.csr`: the device's own request (`warden-agent init`), whose CN is the device id a config must name;
/// - `trust.pem`: the trust anchor the device was provisioned with (`warden-agent init --trust FILE`);
/// - `config.version`: the highest config version ever accepted; an older config is refused.
public struct AgentState: Sendable {
    /// The directory.
    public let directory: String

    /// The state in `directory`.
    public init(directory: String) { self.directory = directory }

    /// `DIR/trust.pem`.
    public var trustPath: String { directory + "/trust.pem" }
    /// `DIR/config.version`.
    public var configFloorPath: String { directory + "/config.version" }
    /// `DIR/device.csr`, written by `warden-agent init`: names the device this state belongs to.
    public var csrPath: String { directory + "/device.csr" }

    /// Checks that `path` holds PEM certificates and that no trust anchor is installed yet; returns its bytes.
    public func checkTrust(from path: String) throws -> [UInt8] {
        let bytes = try SecureFile.read(path, what: "trust file")
        _ = try ChainVerifier(trustPEM: bytes, trustSource: path)
        guard SecureFile.mode(of: trustPath) == nil else {
            throw WardenError.alreadyExists("'\(trustPath)' already exists; refusing to replace the trust anchor")
        }
        return bytes
    }

    /// Installs the trust anchor (PEM certificates) from `path`, refusing to replace an existing one.
    public func provisionTrust(from path: String) throws {
        let bytes = try checkTrust(from: path)
        try SecureFile.ensureDirectory(directory)
        try SecureFile.writeAtomically(bytes, to: trustPath, mode: 0o644)
    }

    /// The persisted config floor (0 before the first config).
    public func configFloor() throws -> Int64 {
        guard SecureFile.mode(of: configFloorPath) != nil else { return 0 }
        let text = try SecureFile.readText(configFloorPath, limit: 64, what: "config floor").trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = Int64(text), value >= 0 else { throw WardenError.storage("'\(configFloorPath)' is corrupted") }
        return value
    }

    /// Verifies the config at `path` (signature against `trust.pem`, then the version floor) and raises the floor to its
    /// version. Nothing is started and nothing is written unless every check passes.
    /// - Throws: `.notFound` without a trust anchor, the errors of ``AgentConfig/verify(_:source:trustPEM:trustSource:now:)``,
    ///   `.policyViolation` for a config older than the floor.
    public func acceptConfig(at path: String, now: Date = Date()) async throws -> AgentConfig {
        guard SecureFile.mode(of: trustPath) != nil else {
            throw WardenError.notFound("no trust anchor '\(trustPath)'; provision one with 'warden-agent init --trust FILE'")
        }
        let trust = try SecureFile.read(trustPath, what: "trust anchor")
        let bytes = try SecureFile.read(path, limit: AgentConfig.maximumBytes, what: "config file")
        let config = try await AgentConfig.verify(bytes, source: path, trustPEM: trust, trustSource: trustPath, now: now)
        // The config must be for this device: the CN of the device's own CSR (which also proves the CSR is intact).
        guard SecureFile.mode(of: csrPath) != nil else {
            throw WardenError.notFound("no device identity '\(csrPath)' in the state directory; run 'warden-agent init' first")
        }
        do {
            _ = try CSRValidator.validate(
                try SecureFile.read(csrPath, limit: CSRValidator.maximumSize, what: "device CSR"), deviceID: config.deviceID,
                profile: .builtInDevice, source: csrPath)
        } catch let error as WardenError where error.code == .policyViolation {
            throw WardenError.policy("config '\(path)' is for device '\(config.deviceID)', not this device ('\(csrPath)')")
        }
        let floor = try configFloor()
        guard config.version >= floor else {
            throw WardenError.policy("config '\(path)' has version \(config.version), older than the accepted version \(floor)")
        }
        if config.version > floor {
            try SecureFile.writeAtomically(Array("\(config.version)\n".utf8), to: configFloorPath, mode: 0o600)
        }
        return config
    }
}
