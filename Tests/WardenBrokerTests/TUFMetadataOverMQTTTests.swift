import Foundation
import Synchronization
import Testing
import WardenBroker
import WardenCore
import WardenMQTT
import WardenTestSupport
import WardenUpdate

/// Metadata files received as retained messages on `warden/tuf/#`, served to a ``TUFUpdater`` by file name.
final class RetainedMetadata: TUFFetcher, @unchecked Sendable {
    // @unchecked: all state is behind the mutex.
    let files = Mutex<[String: [UInt8]]>([:])

    func record(_ message: MQTTMessage) {
        guard message.topic.hasPrefix(TUFTopics.prefix) else { return }
        let name = String(message.topic.dropFirst(TUFTopics.prefix.count))
        files.withLock { $0[name] = message.payload.isEmpty ? nil : message.payload }
    }

    func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
        guard kind == .metadata else { return nil }
        let bytes = files.withLock { $0[path] }
        if let bytes, bytes.count > maxLength { throw WardenError.badInput("\(path) is longer than \(maxLength) bytes") }
        return bytes
    }

    func timestamp() -> [UInt8]? { files.withLock { $0["timestamp.json"] } }
}

@Suite("TUF metadata as retained MQTT messages", .serialized)
struct TUFMetadataOverMQTTTests {
    @Test("a device verifies the retained metadata with the TUF workflow and sees a new release within seconds; it cannot publish there")
    func retainedMetadata() async throws {
        let fleet = try BrokerFleet()
        let keys = try fleet.warden.run(["firmware", "keys", "init"])
        try #require(keys.status == 0, "\(keys.stderr)")
        let first = try fleet.dir.write("fw-1.bin", (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        #expect(try fleet.warden.run(["firmware", "add", first, "--name", "gw", "--version", "1.0.0", "--hardware", "board-a"]).status == 0)
        let rootFile = fleet.dir.file("trusted-root.json")
        #expect(try fleet.warden.run(["firmware", "root", "--out", rootFile]).status == 0)
        let device = try fleet.enroll("gw-0001")
        try fleet.start()

        let client = try await PolicyPropagationTests.session(fleet, device, id: "gw-0001")
        defer { Task { await client.disconnect() } }
        let retained = RetainedMetadata()
        let messages = client.messages
        let reader = Task { for await message in messages { retained.record(message) } }
        defer { reader.cancel() }
        #expect(try await client.subscribe(TUFTopics.filter, qos: 1) < 0x80, "the default policy lets devices read warden/tuf/#")

        let metadataDirectory = fleet.dir.file("device-tuf")
        try FileManager.default.createDirectory(atPath: metadataDirectory, withIntermediateDirectories: true)
        try TUFUpdater.provision(trustedRoot: Array(try Data(contentsOf: URL(fileURLWithPath: rootFile))), metadataDirectory: metadataDirectory)
        var updater = TUFUpdater(metadataDirectory: metadataDirectory, fetcher: retained)
        #expect(await Self.eventually(seconds: 20) { retained.timestamp() != nil }, "retained metadata arrives")
        #expect(await Self.eventually(seconds: 20) {
            var fresh = updater
            return (try? await fresh.refresh()) != nil && fresh.targetInfo("gw/1.0.0") != nil
        })
        try await updater.refresh()
        #expect(updater.targetInfo("gw/1.0.0") != nil)

        // A new release reaches the retained topics (serve polls the repository every 500 ms).
        let before = retained.timestamp()
        let second = try fleet.dir.write("fw-2.bin", (0..<90_000).map { UInt8(truncatingIfNeeded: $0 &* 17) })
        #expect(try fleet.warden.run(["firmware", "add", second, "--name", "gw", "--version", "1.1.0", "--hardware", "board-a"]).status == 0)
        #expect(await Self.eventually(seconds: 20) { retained.timestamp() != before }, "a new timestamp is published")
        #expect(await Self.eventually(seconds: 20) {
            var fresh = updater
            return (try? await fresh.refresh()) != nil && fresh.targetInfo("gw/1.1.0") != nil
        })
        try await updater.refresh()
        #expect(updater.targetInfo("gw/1.1.0")?.length == 90_000)

        // Devices only read: a forged timestamp is refused by the broker (and would fail TUF verification anyway).
        let forged = try await client.publish(MQTTMessage(topic: TUFTopics.metadata("timestamp.json"), payload: Array("{}".utf8), qos: 1, retain: true))
        #expect(forged == 135)
    }

    /// Polls `condition` every 100 ms until it holds or `seconds` pass.
    static func eventually(seconds: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return await condition()
    }
}
