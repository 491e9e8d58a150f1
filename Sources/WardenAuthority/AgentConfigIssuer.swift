import Foundation
import WardenCore
import WardenPKI
import WardenStore
import WardenUpdate

/// What `warden device config` puts in a device's agent config besides what the authority knows itself.
public struct AgentConfigRequest: Sendable {
    /// The device.
    public var deviceID: DeviceID
    /// The broker URL, `mqtts://HOST:PORT`.
    public var broker: String
    /// The authority's HTTPS base URL.
    public var httpsURL: String
    /// The edge-core pipeline (JSON text), if any.
    public var pipeline: String?
    /// The device's hardware id (`hardware`), matched against a firmware target's signed `custom.hardware`; optional.
    public var hardware: String?
    /// The post-install health check (`health_check`): an absolute path and its arguments (no shell); optional.
    public var healthCheck: [String]?
    /// The health check's timeout in seconds (1 … 3600; default 30).
    public var healthTimeout: Int?

    /// A request; the URLs are checked by ``Authority/issueAgentConfig(_:passphrase:now:)``.
    public init(
        deviceID: DeviceID, broker: String, httpsURL: String, pipeline: String?, hardware: String? = nil,
        healthCheck: [String]? = nil, healthTimeout: Int? = nil
    ) {
        self.deviceID = deviceID
        self.broker = broker
        self.httpsURL = httpsURL
        self.pipeline = pipeline
        self.hardware = hardware
        self.healthCheck = healthCheck
        self.healthTimeout = healthTimeout
    }

    /// The optional OTA fields of `signed` (`hardware`, `health_check`), checked; empty when none was asked for, so
    /// configs without them stay byte-identical to older ones.
    func otaFields() throws -> [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        if let hardware {
            try FirmwareRepository.validateHardware(hardware)
            fields["hardware"] = .string(hardware)
        }
        if let healthTimeout, healthCheck == nil || !(1...3600).contains(healthTimeout) {
            throw WardenError.badInput(healthCheck == nil
                ? "--health-timeout needs --health-check" : "--health-timeout \(healthTimeout) must be 1 to 3600 seconds")
        }
        if let command = healthCheck {
            guard let path = command.first, path.hasPrefix("/"), command.count <= 64,
                command.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 4096 && !$0.contains("\0") })
            else { throw WardenError.badInput("--health-check must be an absolute path followed by at most 63 arguments") }
            fields["health_check"] = .object([
                "command": .array(command.map { .string($0) }), "timeout_seconds": .int(Int64(healthTimeout ?? 30)),
            ])
        }
        return fields
    }
}

extension WardenHome {
    /// `HOME/agent-configs`: the latest signed agent config of each device, exactly as `warden device config` wrote it.
    public var agentConfigDirectory: String { path + "/agent-configs" }

    /// `HOME/agent-configs/<id>.json`: the latest signed agent config of `device`.
    public func agentConfigPath(_ device: DeviceID) -> String { agentConfigDirectory + "/\(device.rawValue).json" }
}

extension Authority {
    /// Builds and signs an agent config for an active device (the format is documented on EdgeAgent's `AgentConfig`):
    /// the broker and HTTPS URLs, the trust bundle (issuing + root), the TUF root if the firmware repository exists,
    /// the pipeline, and the next config version of the device. It is signed with the issuing CA key (ECDSA P-256 over
    /// the canonical JSON of `signed`), the signature carrying the issuing and root certificates. The version and the
    /// audit event are recorded in one transaction; the
    /// signed bytes are then stored as ``WardenHome/agentConfigPath(_:)`` (what `serve` publishes over MQTT).
    /// - Returns: the config file bytes and its version.
    public func issueAgentConfig(_ request: AgentConfigRequest, passphrase: [UInt8], now: Date) throws -> (bytes: [UInt8], version: Int64) {
        try Self.checkURL(request.broker, scheme: "mqtts", what: "--broker", needsPort: true)
        try Self.checkURL(request.httpsURL, scheme: "https", what: "--https-url", needsPort: false)
        let pipeline: JSONValue
        if let text = request.pipeline {
            guard text.utf8.count <= 256 * 1024 else { throw WardenError.badInput("the pipeline is larger than 256 KiB") }
            // Pipelines hold decimals, which canonical JSON cannot carry: check it is JSON, then embed the text.
            guard (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [String: Any] else {
                throw WardenError.badInput("the pipeline file is not a JSON object")
            }
            pipeline = .string(text)
        } else {
            pipeline = .null
        }
        let otaFields = try request.otaFields()
        let repository = FirmwareRepository(home: home)
        let tufRoot: JSONValue = repository.isInitialized
            ? try JSONValue.parse(try repository.trustedRootBytes(), what: "trusted TUF root") : .null
        let signer = try DocumentSigner.issuingCA(layout: home.ca, passphrase: passphrase)
        let bundle = try CertificateAuthority.bundlePEM(layout: home.ca)
        var document: [UInt8] = []
        let version = try registry.issueAgentConfig(request.deviceID, actor: actor, now: now) { version in
            var fields: [String: JSONValue] = [
                "type": .string("warden-agent-config"),
                "spec": .int(1),
                "device_id": .string(request.deviceID.rawValue),
                "version": .int(version),
                "issued_at": .string(ISO8601DateFormatter().string(from: now)),
                "broker": .string(request.broker),
                "https_url": .string(request.httpsURL),
                "trust_bundle": .string(bundle),
                "tuf_root": tufRoot,
                "pipeline": pipeline,
            ]
            fields.merge(otaFields) { current, _ in current }
            let signed = JSONValue.object(fields)
            let signature = try signer.sign(signed.canonicalBytes)
            document = JSONValue.object([
                "signed": signed,
                "signature": .object([
                    "algorithm": .string(signature.algorithm),
                    "value": .string(signature.value),
                    "chain": .array(signature.chain.map { .string($0) }),
                ]),
            ]).prettyBytes
            return Digest.hex(Digest.sha256(document))
        }
        // The latest signed bytes, for `serve`'s config publisher (retained on d/<id>/down/config). Written after the
        // registry commit; if this fails, the registry's digest no longer matches the stored file and the publisher
        // keeps the previous retained config (versions only need to go up).
        try SecureFile.ensureDirectory(home.agentConfigDirectory, mode: 0o700)
        try SecureFile.writeAtomically(document, to: home.agentConfigPath(request.deviceID), mode: 0o644)
        return (document, version)
    }

    static func checkURL(_ text: String, scheme: String, what: String, needsPort: Bool) throws {
        guard text.utf8.count <= 2048, let url = URL(string: text), url.scheme?.lowercased() == scheme,
            let host = url.host, !host.isEmpty, !needsPort || url.port != nil
        else {
            throw WardenError.badInput("\(what) '\(text.prefix(200))' must be a \(scheme)://HOST\(needsPort ? ":PORT" : "") URL")
        }
    }
}
