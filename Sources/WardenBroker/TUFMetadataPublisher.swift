import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT
import WardenUpdate

extension BrokerLayout {
    /// The TUF metadata publisher's client certificate chain (CN `warden-tuf`), issued by `warden serve` at start.
    public var tufPublisherCertificate: String { directory + "/tuf.crt.pem" }
    /// Its private key (mode 0600).
    public var tufPublisherKey: String { directory + "/tuf.key.pem" }
}

/// The retained MQTT topics that carry the firmware repository's TUF metadata (`firmware/OTA-PROTOCOL.md`).
///
/// The names are the file names a TUF client fetches, under `warden/tuf/`: every `N.root.json` (so a device can walk
/// the root chain from the root it was provisioned with), `timestamp.json`, and the *current* `N.snapshot.json` and
/// `N.targets.json` (superseded versioned files are cleared, so retained state stays bounded).
public enum TUFTopics {
    /// Prefix of every metadata topic.
    public static let prefix = "warden/tuf/"
    /// Filter a device subscribes to for all metadata.
    public static let filter = "warden/tuf/#"
    /// The topic of the metadata file `name` (e.g. `3.root.json`, `timestamp.json`).
    public static func metadata(_ name: String) -> String { prefix + name }
}

/// Publishes the firmware repository's metadata as retained MQTT messages and republishes within
/// ``pollInterval`` of any change (`firmware add`, a key rotation, `serve`'s refresher), so devices that are online
/// only over MQTT see new releases without an HTTPS path. What is published is exactly the signed files that
/// `/tuf/metadata/` serves: devices verify them with the TUF workflow, so the broker is not trusted with integrity.
public struct TUFMetadataPublisher: Sendable {
    /// The MQTT configuration of the `warden-tuf` identity.
    public let configuration: MQTTConfiguration
    /// The repository whose published metadata is mirrored.
    public let repository: FirmwareRepository
    /// How often the repository is checked for changes.
    public let pollInterval: Duration
    /// One line per noteworthy event, for the log.
    public let onEvent: @Sendable (String) -> Void

    /// Creates a publisher for `repository` that connects with `configuration`.
    public init(
        configuration: MQTTConfiguration, repository: FirmwareRepository, pollInterval: Duration = .milliseconds(500),
        onEvent: @escaping @Sendable (String) -> Void
    ) {
        self.configuration = configuration
        self.repository = repository
        self.pollInterval = pollInterval
        self.onEvent = onEvent
    }

    /// Issues a fresh `warden-tuf` client certificate into the broker setup (key mode 0600, written atomically)
    /// and returns the MQTT configuration that connects with it to the setup's broker.
    /// - Throws: ``WardenError`` from issuance or storage.
    public static func issueIdentity(authority: Authority, layout: BrokerLayout, now: Date) throws -> MQTTConfiguration {
        try ServiceIdentity.issue(
            commonName: DynamicSecurity.tufUsername, certificate: layout.tufPublisherCertificate, key: layout.tufPublisherKey,
            authority: authority, layout: layout, now: now)
    }

    /// What identifies the published state cheaply: the bytes of `timestamp.json` (every change of targets or
    /// snapshot produces a new timestamp) and the newest root version. Nil when no repository exists yet.
    struct Fingerprint: Equatable {
        var timestamp: [UInt8]
        var rootVersion: Int64
    }

    /// Reads the fingerprint: one small file and a few `stat`s, so polling it every ``pollInterval`` stays cheap
    /// however many targets the repository holds.
    func fingerprint(knownRootVersion: Int64) throws -> Fingerprint? {
        guard let timestamp = try repository.publishedTimestampBytes() else { return nil }
        return Fingerprint(timestamp: timestamp, rootVersion: repository.latestRootVersion(from: knownRootVersion))
    }

    /// The metadata files to publish for `fingerprint`, by topic. Only the timestamp and snapshot are parsed (to
    /// find the current versioned names); the targets file, which grows with the repository, is read, not parsed.
    /// - Throws: ``WardenError`` when the published metadata cannot be read.
    func files(for fingerprint: Fingerprint) throws -> [String: [UInt8]] {
        let timestamp = try SignedMetadata<TimestampMetadata>.parse(fingerprint.timestamp, what: "timestamp.json")
        let snapshotName = "\(timestamp.payload.snapshot.version).snapshot.json"
        var files: [String: [UInt8]] = [TUFTopics.metadata("timestamp.json"): fingerprint.timestamp]
        let snapshotBytes = try read(snapshotName)
        files[TUFTopics.metadata(snapshotName)] = snapshotBytes
        let snapshot = try SignedMetadata<SnapshotMetadata>.parse(snapshotBytes, what: snapshotName)
        if let targets = snapshot.payload.meta["targets.json"]?.version {
            files[TUFTopics.metadata("\(targets).targets.json")] = try read("\(targets).targets.json")
        }
        for version in 1...fingerprint.rootVersion { files[TUFTopics.metadata("\(version).root.json")] = try read("\(version).root.json") }
        return files
    }

    func read(_ name: String) throws -> [UInt8] {
        guard let path = repository.metadataFile(name) else {
            throw WardenError.storage("the published metadata '\(name)' is missing from '\(repository.metadataDirectory)'")
        }
        return try SecureFile.read(path, limit: MQTTMessage.maximumPayloadSize, what: "metadata file")
    }

    /// Connects, publishes and keeps the retained metadata current until cancelled; reconnects after `retryDelay`
    /// whenever the broker goes away (and republishes everything, since the broker may have lost its retained store).
    public func run(retryDelay: Duration = .seconds(1)) async throws {
        try await ServiceLoop.reconnecting("TUF metadata publisher", retryDelay: retryDelay, onEvent: onEvent) { try await publishOnce() }
    }

    /// One connection's lifetime: publish what changed every ``pollInterval``.
    func publishOnce() async throws {
        let client = try MQTTClient(configuration)
        try await client.connect()
        defer { Task { await client.disconnect() } }
        var published: [String: [UInt8]] = [:]
        var seen: Fingerprint?
        while !Task.isCancelled {
            guard client.isConnected else { throw WardenError.storage("the broker closed the TUF publisher's connection") }
            let current = try fingerprint(knownRootVersion: seen?.rootVersion ?? 1)
            if let current, current != seen {
                published = try await publishChanges(from: published, to: try files(for: current), via: client)
                seen = current
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// Publishes the files whose bytes changed and clears (empty retained message) topics no longer current.
    /// - Returns: what is now published.
    func publishChanges(from old: [String: [UInt8]], to new: [String: [UInt8]], via client: MQTTClient) async throws -> [String: [UInt8]] {
        // Roots first, then targets and snapshot, timestamp last: a device that sees the new timestamp finds the
        // files it points to already retained.
        let order: (String) -> Int = { topic in
            topic.hasSuffix(".root.json") ? 0 : topic.hasSuffix(".targets.json") ? 1 : topic.hasSuffix(".snapshot.json") ? 2 : 3
        }
        for (topic, bytes) in new.sorted(by: { (order($0.key), $0.key) < (order($1.key), $1.key) }) where old[topic] != bytes {
            try await send(MQTTMessage(topic: topic, payload: bytes, qos: 1, retain: true), via: client)
        }
        for topic in old.keys.sorted() where new[topic] == nil {
            try await send(MQTTMessage(topic: topic, payload: [], qos: 1, retain: true), via: client)
        }
        if old.isEmpty != new.isEmpty || old.keys.sorted() != new.keys.sorted() {
            onEvent("TUF metadata published on \(TUFTopics.filter): \(new.keys.sorted().map { String($0.dropFirst(TUFTopics.prefix.count)) }.joined(separator: ", "))")
        }
        return new
    }

    func send(_ message: MQTTMessage, via client: MQTTClient) async throws {
        let code = try await client.publish(message)
        guard code < 0x80 else {
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the publish to \(message.topic) (reason \(code)); regenerate the broker setup with 'warden broker config'")
        }
    }
}
