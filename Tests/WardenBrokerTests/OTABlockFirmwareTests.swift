import Foundation
import Testing
import WardenBroker
import WardenCore
import WardenMQTT
import WardenPKI
import WardenTestSupport
import WardenUpdate

@Suite("OTA block service with the firmware repository", .serialized)
struct OTABlockFirmwareTests {
    @Test("name@version resolves to the image `firmware add` published; blocks verify against its signed merkle_root; an image corrupted on disk is withdrawn, never sent",
          .timeLimit(.minutes(4)))
    func firmwareRepositoryAndDiskCorruption() async throws {
        let fleet = try BrokerFleet()
        let device = try fleet.enroll("ota-carol")
        let image = try otaRandomImage(20 * 4096 + 77)
        let imagePath = fleet.dir.file("fw.bin")
        try Data(image).write(to: URL(fileURLWithPath: imagePath))
        let initialized = try fleet.warden.run(["firmware", "keys", "init"])
        #expect(initialized.status == 0, "\(initialized.stderr)")
        let added = try fleet.warden.run([
            "firmware", "add", imagePath, "--name", "carol-fw", "--version", "1.0.0", "--hardware", "board-a", "--block-size", "4KiB", "--json"])
        #expect(added.status == 0, "\(added.stderr)")
        // What a device trusts comes from the signed targets metadata, as `firmware list` shows it.
        let listed = try fleet.warden.run(["firmware", "list", "--json"])
        let releases = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let release = try #require(releases.first { $0["name"] as? String == "carol-fw" })
        let sha256Hex = try #require(release["sha256"] as? String)
        let rootHex = try #require(release["merkle_root"] as? String)
        let length = try #require(release["length"] as? Int)
        let blockSize = try #require(release["block_size"] as? Int)
        let target = try BlockTarget(
            sha256: Digest.bytes(fromHex: sha256Hex) ?? [], length: length, blockSize: blockSize,
            merkleRoot: Digest.bytes(fromHex: rootHex) ?? [])
        #expect(target.sha256 == Digest.sha256(image))

        try fleet.start()
        defer { fleet.stop() }
        let log = fleet.dir.file("serve.log")
        #expect(BrokerFleet.waitUntil(timeout: 20) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("OTA block service subscribed")
        })

        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: fleet.port, clientID: "ota-carol",
            tls: MQTTTLS(caFile: fleet.brokerDir + "/ca.pem", certFile: device.cert, keyFile: device.key)))
        try await client.connect()
        defer { Task { await client.disconnect() } }
        #expect(try await client.subscribe(OTATopics.blocks(device: "ota-carol")) < 0x80)
        let inbox = OTAInbox(client.messages)
        func ask(_ request: OTAWire.BlockRequest) async throws {
            let code = try await client.publish(MQTTMessage(topic: OTATopics.request(device: "ota-carol"), payload: try request.encoded(), qos: 1))
            #expect(code < 0x80)
        }

        // By name@version: all 21 blocks, each verifying against the signed root; assembled byte-identical.
        let download = try BlockDownload(target: target, destination: fleet.dir.file("carol.image"))
        try await ask(OTAWire.BlockRequest(
            requestID: 1, target: .nameVersion(name: "carol-fw", version: "1.0.0"), blockSize: 4096, selection: .ranges([0..<21])))
        #expect(await inbox.wait(seconds: 20) { responses in
            responses.contains { if case .status(let s) = $0 { s.code == .done } else { false } }
        })
        for block in inbox.blocks { #expect(download.accept(block) == .stored(index: Int(block.header.blockIndex))) }
        #expect(download.isComplete)
        try download.finish()
        #expect(FileManager.default.contents(atPath: fleet.dir.file("carol.image")).map(Array.init) == image)
        // An unknown version is not found.
        inbox.clear()
        try await ask(OTAWire.BlockRequest(
            requestID: 2, target: .nameVersion(name: "carol-fw", version: "9.9.9"), blockSize: 4096, selection: .ranges([0..<1])))
        #expect(await inbox.wait(seconds: 10) { !$0.isEmpty })
        #expect(inbox.statuses.map(\.code) == [.notFound])

        // Bit rot in the stored image after it was indexed: block 5 is withheld (never sent) and the image withdrawn.
        let stored = fleet.home + "/firmware/" + Digest.hex(target.sha256)
        let handle = try #require(FileHandle(forUpdatingAtPath: stored))
        try handle.seek(toOffset: 5 * 4096 + 100)
        try handle.write(contentsOf: Data([image[5 * 4096 + 100] ^ 0x20]))
        try handle.close()
        inbox.clear()
        try await ask(OTAWire.BlockRequest(
            requestID: 3, target: .sha256(target.sha256), blockSize: 4096, selection: .ranges([5..<6])))
        #expect(await inbox.wait(seconds: 10) { !$0.isEmpty })
        #expect(inbox.blocks.isEmpty)
        #expect(inbox.statuses.map(\.code) == [.unavailable])
        // Asked again, the re-loaded image fails its whole-image hash: still unavailable, still no block.
        inbox.clear()
        try await Task.sleep(for: .milliseconds(600))
        try await ask(OTAWire.BlockRequest(
            requestID: 4, target: .sha256(target.sha256), blockSize: 4096, selection: .ranges([0..<1])))
        #expect(await inbox.wait(seconds: 10) { !$0.isEmpty })
        #expect(inbox.blocks.isEmpty)
        #expect(inbox.statuses.map(\.code) == [.unavailable])
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("withdrawn"))
    }
}
