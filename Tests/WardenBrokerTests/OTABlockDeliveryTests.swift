import Foundation
import Synchronization
import Testing
import WardenBroker
import WardenCore
import WardenMQTT
import WardenPKI
import WardenTestSupport
import WardenUpdate

/// Random bytes from the kernel (fast, unlike a Swift generator in a debug build).
func otaRandomImage(_ count: Int) throws -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: "/dev/urandom") else { throw TestSupportError("no /dev/urandom") }
    defer { try? handle.close() }
    return Array(try handle.read(upToCount: count) ?? Data())
}

/// A broker fleet plus an image stored the way `warden firmware add` stores it: `$WARDEN_HOME/firmware/<sha256>`.
struct OTAFleet {
    let fleet: BrokerFleet
    let image: [UInt8]
    let index: BlockIndex
    let target: BlockTarget

    init(imageSize: Int, blockSize: Int) throws {
        fleet = try BrokerFleet()
        image = try otaRandomImage(imageSize)
        index = try BlockIndex(image: image, blockSize: blockSize)
        let hash = Digest.sha256(image)
        target = try BlockTarget(index: index, sha256: hash)
        let directory = fleet.home + "/firmware"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(image).write(to: URL(fileURLWithPath: directory + "/" + Digest.hex(hash)))
    }

    /// Starts `warden serve` and waits until the block service has subscribed.
    func start() throws {
        try fleet.start()
        let log = fleet.dir.file("serve.log")
        let ready = BrokerFleet.waitUntil(timeout: 20) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("OTA block service subscribed")
        }
        guard ready else {
            throw TestSupportError("the OTA block service did not subscribe: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
    }

    func downloader(_ id: String, _ device: (key: String, cert: String), target: BlockTarget? = nil) -> OTATestDownloader {
        OTATestDownloader(
            device: id, certificate: device.cert, key: device.key, caFile: fleet.brokerDir + "/ca.pem", port: fleet.port,
            target: target ?? self.target, destination: fleet.dir.file("\(id).image"))
    }

    /// A client with the CLI control identity, whose role may publish to any device's down/ tree: it plays a
    /// compromised or faulty sender injecting a forged block.
    func injector() async throws -> MQTTClient {
        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: fleet.port, clientID: DynamicSecurity.cliControlUsername,
            tls: MQTTTLS(caFile: fleet.brokerDir + "/ca.pem", certFile: fleet.brokerDir + "/control-cli.crt.pem",
                         keyFile: fleet.brokerDir + "/control-cli.key.pem"),
            connectTimeout: .seconds(10)))
        try await client.connect()
        return client
    }
}

@Suite("OTA block delivery through real Mosquitto", .serialized)
struct OTABlockDeliveryTests {
    @Test(
        "a 16 MiB image reaches 20 downloaders at once through Mosquitto (mTLS, dynsec, the compiled device policy); every block verifies alone; a forged block is refused at that block; the images are byte-identical",
        .timeLimit(.minutes(6)))
    func twentyDownloaders() async throws {
        let ota = try OTAFleet(imageSize: 16 * 1024 * 1024, blockSize: 64 * 1024)
        var devices: [(String, (key: String, cert: String))] = []
        for number in 0..<20 {
            let id = "ota-dev-\(number)"
            devices.append((id, try ota.fleet.enroll(id)))
        }
        try ota.start()
        defer { ota.fleet.stop() }

        // Device 0's download gets a forged block 200 (one flipped byte, the genuine proof, the right header) after
        // its first 40 genuine blocks, while block 200 is still missing.
        let injector = try await ota.injector()
        let forgedIndex = 200
        var forgedData = Array(ota.image[ota.index.byteRange(ofBlock: forgedIndex)])
        forgedData[12_345] ^= 0x01
        let forged = try OTAWire.BlockMessage(
            header: OTAWire.BlockHeader(requestID: 1, targetSHA256: ota.target.sha256, blockSize: ota.index.blockSize,
                                        blockIndex: UInt32(forgedIndex), blockCount: UInt32(ota.index.blockCount)),
            proof: ota.index.proof(forBlock: forgedIndex), data: forgedData).encoded()
        let forgedTopic = OTATopics.blocks(device: devices[0].0)

        let reports = try await withThrowingTaskGroup(of: OTATestDownloader.Report.self) { group in
            for (number, (id, device)) in devices.enumerated() {
                var downloader = ota.downloader(id, device)
                if number == 0 {
                    downloader.midway = (after: 40, action: {
                        let code = try await injector.publish(MQTTMessage(topic: forgedTopic, payload: forged, qos: 1))
                        guard code < 0x80 else { throw TestSupportError("the injector's forged block was refused (\(code))") }
                    })
                }
                group.addTask { try await downloader.run() }
            }
            var all: [OTATestDownloader.Report] = []
            for try await report in group { all.append(report) }
            return all
        }
        await injector.disconnect()

        #expect(reports.count == 20)
        for report in reports {
            // Byte-identical after BlockDownload.finish() (which also checked the whole-image SHA-256).
            let received = FileManager.default.contents(atPath: ota.fleet.dir.file("\(report.device).image")).map(Array.init)
            #expect(received == ota.image, "\(report.device): image differs")
            #expect(report.stored == ota.index.blockCount)
            #expect(report.dropped == 0)
            if report.device == devices[0].0 {
                #expect(report.rejections.count == 1)
                let rejection = try #require(report.rejections.first)
                #expect(rejection.index == forgedIndex)
                // Detected at that block, not at the end: most of the image was still missing.
                #expect(rejection.missingAtThatTime > ota.index.blockCount / 2, "rejected with \(rejection.missingAtThatTime) blocks missing")
            } else {
                #expect(report.rejections.isEmpty, "\(report.device): \(report.rejections.map(\.reason))")
            }
        }
        let slowest = reports.map(\.seconds).max() ?? 0
        let requests = reports.map(\.requests).reduce(0, +)
        let duplicates = reports.map(\.duplicates).reduce(0, +)
        print("OTA acceptance: 20 × 16 MiB in \(slowest) s, \(requests) requests, \(duplicates) duplicate blocks")
    }

    @Test("refusals: another device's topics (135), an unknown image, garbage, blocks beyond the image; a request storm is rate-limited",
          .timeLimit(.minutes(3)))
    func refusals() async throws {
        let ota = try OTAFleet(imageSize: 300 * 1024, blockSize: 4096)
        let alice = try ota.fleet.enroll("ota-alice")
        try ota.fleet.enroll("ota-bob")
        try ota.start()
        defer { ota.fleet.stop() }

        let client = try MQTTClient(MQTTConfiguration(
            host: "127.0.0.1", port: ota.fleet.port, clientID: "ota-alice",
            tls: MQTTTLS(caFile: ota.fleet.brokerDir + "/ca.pem", certFile: alice.cert, keyFile: alice.key)))
        try await client.connect()
        defer { Task { await client.disconnect() } }
        #expect(try await client.subscribe(OTATopics.blocks(device: "ota-alice")) < 0x80)
        // Alice may neither read Bob's blocks nor ask in Bob's name (MQTT v5 reason 135).
        #expect(try await client.subscribe(OTATopics.blocks(device: "ota-bob")) >= 0x80)
        let foreign = try OTAWire.BlockRequest(
            requestID: 1, target: .sha256(ota.target.sha256), blockSize: 4096, selection: .ranges([0..<1])).encoded()
        #expect(try await client.publish(MQTTMessage(topic: OTATopics.request(device: "ota-bob"), payload: foreign, qos: 1)) == 135)

        let inbox = OTAInbox(client.messages)
        func ask(_ payload: [UInt8]) async throws {
            #expect(try await client.publish(MQTTMessage(topic: OTATopics.request(device: "ota-alice"), payload: payload, qos: 1)) < 0x80)
        }

        // An image that does not exist; garbage; blocks beyond the image.
        try await ask(try OTAWire.BlockRequest(
            requestID: 2, target: .sha256(Digest.sha256([1])), blockSize: 4096, selection: .ranges([0..<1])).encoded())
        try await ask([1, 1, 0])
        try await ask(try OTAWire.BlockRequest(
            requestID: 3, target: .sha256(ota.target.sha256), blockSize: 4096, selection: .ranges([74..<76])).encoded())
        #expect(await inbox.wait(seconds: 10) { $0.count >= 3 })
        // Answers are published concurrently, so their order may differ from the requests'.
        #expect(inbox.statuses.sorted { $0.requestID < $1.requestID } == [
            OTAWire.StatusMessage(requestID: 0, targetSHA256: nil, code: .badRequest),
            OTAWire.StatusMessage(requestID: 2, targetSHA256: Digest.sha256([1]), code: .notFound),
            OTAWire.StatusMessage(requestID: 3, targetSHA256: ota.target.sha256, code: .badRequest),
        ])
        #expect(inbox.blocks.isEmpty)

        // A storm of 200 requests for all 75 blocks: the token bucket (burst 8, 4/s; 3 already spent) admits a
        // few, each superseding the previous queue; the rest get at most one rate_limited answer per second.
        inbox.clear()
        try await Task.sleep(for: .seconds(2))  // refill the bucket
        let storm = try OTAWire.BlockRequest(
            requestID: 4, target: .sha256(ota.target.sha256), blockSize: 4096, selection: .ranges([0..<75])).encoded()
        let stormStart = ContinuousClock.now
        for _ in 0..<200 { try await ask(storm) }
        let stormSeconds = Double((ContinuousClock.now - stormStart).components.seconds) + 1
        // Quiet: no new message for 1.5 s.
        var last = -1
        while inbox.count != last {
            last = inbox.count
            try await Task.sleep(for: .milliseconds(1500))
        }
        let limited = inbox.statuses.filter { $0.code == .rateLimited }
        let done = inbox.statuses.filter { $0.code == .done }
        #expect(!limited.isEmpty)
        #expect(Double(limited.count) <= stormSeconds + 1, "\(limited.count) rate_limited answers in a \(stormSeconds) s storm")
        #expect(limited.allSatisfy { $0.retryAfterMilliseconds > 0 })
        #expect(done.count >= 1 && done.count <= 8 + Int(stormSeconds * 4))
        let blocks = inbox.blocks
        #expect(blocks.count >= 75)
        #expect(blocks.count <= 75 * (8 + Int(stormSeconds * 4)), "\(blocks.count) blocks for a storm of 200 requests")
        // Every block verifies alone, and together they cover the image.
        for block in blocks {
            #expect(BlockIndex.verify(
                block: block.data, index: Int(block.header.blockIndex), proof: block.proof, root: ota.index.merkleRoot,
                blockCount: ota.index.blockCount, length: ota.index.length, blockSize: 4096))
        }
        #expect(Set(blocks.map(\.header.blockIndex)).count == 75)
    }
}

/// Collects the OTA messages a test client receives.
final class OTAInbox: Sendable {
    final class Storage: Sendable {
        let responses = Mutex<[OTAWire.Response]>([])
    }

    let storage = Storage()
    let task: Task<Void, Never>

    init(_ messages: AsyncStream<MQTTMessage>) {
        let storage = self.storage
        task = Task {
            for await message in messages {
                guard let response = try? OTAWire.Response(decoding: message.payload) else { continue }
                storage.responses.withLock { $0.append(response) }
            }
        }
    }

    deinit { task.cancel() }

    var count: Int { storage.responses.withLock { $0.count } }
    func clear() { storage.responses.withLock { $0.removeAll() } }
    var statuses: [OTAWire.StatusMessage] {
        storage.responses.withLock { $0.compactMap { if case .status(let status) = $0 { status } else { nil } } }
    }
    var blocks: [OTAWire.BlockMessage] {
        storage.responses.withLock { $0.compactMap { if case .block(let block) = $0 { block } else { nil } } }
    }

    /// Polls until `condition` holds on the responses or `seconds` pass.
    func wait(seconds: Double, _ condition: @Sendable ([OTAWire.Response]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if storage.responses.withLock({ condition($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return storage.responses.withLock { condition($0) }
    }
}
