import Foundation
import WardenAuthority
import WardenCore
import WardenMQTT
import WardenStore

/// The retained topic that tells one device which firmware target it is assigned (`firmware/OTA-PROTOCOL.md` §11).
public enum AssignmentTopics {
    /// `d/<id>/down/ota/assignment`.
    public static func assignment(device: String) -> String { "d/\(device)/down/ota/assignment" }
    /// The filter the `warden-assign` role publishes to.
    public static let filter = "d/+/down/ota/assignment"
}

/// One device's current assignment, as published: `{"rollout": 3, "target": "gw/1.1.0", "name": "gw",
/// "version": "1.1.0", "sha256": "<hex>"}`. The device trusts nothing in it beyond "which target": the target itself
/// is verified through TUF.
public struct PublishedAssignment: Codable, Sendable, Equatable {
    /// The rollout id (what the device's signed status reports name).
    public var rollout: Int64
    /// The TUF target name (`<name>/<version>`, as `warden firmware add` publishes it).
    public var target: String
    /// The firmware name.
    public var name: String
    /// The firmware version.
    public var version: String
    /// The image SHA-256 (hex), a hint only.
    public var sha256: String

    /// Creates an assignment message.
    public init(rollout: Int64, target: String, name: String, version: String, sha256: String) {
        self.rollout = rollout
        self.target = target
        self.name = name
        self.version = version
        self.sha256 = sha256
    }

    /// The JSON payload (sorted keys).
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(self))
    }
}

/// Publishes every device's current rollout assignment, retained with QoS 1, on `d/<id>/down/ota/assignment`, and
/// clears it (empty retained payload) when the assignment ends (the device reported a final state, or the rollout was
/// aborted or completed). Runs in `warden serve` next to the block service with its own identity `warden-assign`
/// (``AssignmentIdentity``; Mosquitto takes the username as client id, so it cannot share `warden-ota`'s).
///
/// The registry is polled every ``pollInterval``: the rollouts table first (small); device rows only of running or
/// paused rollouts. Only changed assignments are published; every (re)connection republishes everything, since the
/// broker keeps no persistence.
public struct AssignmentPublisher: Sendable {
    /// The MQTT configuration (the `warden-assign` identity).
    public let configuration: MQTTConfiguration
    /// The registry holding rollouts.
    public let registry: Registry
    /// How often the registry is read.
    public let pollInterval: Duration
    /// One line per noteworthy event, for the log.
    public let onEvent: @Sendable (String) -> Void

    /// A publisher connecting with `configuration`.
    public init(
        configuration: MQTTConfiguration, registry: Registry, pollInterval: Duration = .milliseconds(500),
        onEvent: @escaping @Sendable (String) -> Void
    ) {
        self.configuration = configuration
        self.registry = registry
        self.pollInterval = pollInterval
        self.onEvent = onEvent
    }

    /// Every device's current assignment: its row in a running or paused rollout where it is pending or downloading
    /// (the newest rollout wins, as ``Registry/currentAssignment(device:)`` decides).
    /// - Throws: ``WardenError`` `.storage` when the registry cannot be read.
    public func currentAssignments() throws -> [String: PublishedAssignment] {
        var result: [String: PublishedAssignment] = [:]
        let active = try registry.rollouts().filter { $0.state == .running || $0.state == .paused }.sorted { $0.id < $1.id }
        for rollout in active {
            for device in try registry.rolloutDevices(rollout.id) where device.state == .pending || device.state == .downloading {
                result[device.deviceID] = PublishedAssignment(
                    rollout: rollout.id, target: FirmwareRepository.targetPath(name: rollout.targetName, version: rollout.targetVersion),
                    name: rollout.targetName, version: rollout.targetVersion, sha256: rollout.targetSHA256)
            }
        }
        return result
    }

    /// Connects and keeps the retained assignments current until cancelled; reconnects after `retryDelay`.
    public func run(retryDelay: Duration = .seconds(1)) async throws {
        try await ServiceLoop.reconnecting("assignment publisher", retryDelay: retryDelay, onEvent: onEvent) { try await publishOnce() }
    }

    /// One connection's lifetime.
    func publishOnce() async throws {
        let client = try MQTTClient(configuration)
        try await client.connect()
        defer { Task { await client.disconnect() } }
        var published: [String: PublishedAssignment] = [:]
        var first = true
        while !Task.isCancelled {
            guard client.isConnected else { throw WardenError.storage("the broker closed the assignment publisher's connection") }
            let current = try currentAssignments()
            for (device, assignment) in current.sorted(by: { $0.key < $1.key }) where published[device] != assignment {
                try await send(MQTTMessage(topic: AssignmentTopics.assignment(device: device), payload: try assignment.encoded(), qos: 1, retain: true), via: client)
                onEvent("assignment published: \(device) → rollout \(assignment.rollout) \(assignment.target)")
            }
            for device in published.keys.sorted() where current[device] == nil {
                try await send(MQTTMessage(topic: AssignmentTopics.assignment(device: device), payload: [], qos: 1, retain: true), via: client)
                onEvent("assignment cleared: \(device)")
            }
            if first {
                onEvent("assignment publisher connected: \(current.count) assignment(s) published")
                first = false
            }
            published = current
            try await Task.sleep(for: pollInterval)
        }
    }

    func send(_ message: MQTTMessage, via client: MQTTClient) async throws {
        let code = try await client.publish(message)
        guard code < 0x80 else {
            throw WardenError.policy(
                "the broker refused \(configuration.clientID) the publish to \(message.topic) (reason \(code)); regenerate the broker setup with 'warden broker config'")
        }
    }
}
