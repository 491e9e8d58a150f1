import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport
import WardenUpdate

#if canImport(Glibc)
import Glibc
#endif

/// The agent's OTA client end to end: real `warden serve` (Mosquitto, block service, TUF metadata publisher,
/// assignment publisher) and real `warden-agent run` processes.
@Suite("agent OTA client: rollouts install, refusals, resume after kill -9, health-check rollback", .serialized)
struct OTAAgentTests {
    static let hardware = "board-h"

    @Test("rollout of gw@1.1.0 → the agent installs it byte-identical and reports succeeded; a downgrade to gw@1.0.0 and an image for other hardware are refused, reported failed, never installed")
    func installThenRefuseDowngradeAndHardware() throws {
        let fleet = try OTAFleet()
        let device = try fleet.enroll("gw-ota-1", group: "lab", hardware: Self.hardware)
        let v100 = OTAFleet.image(150_000, seed: 1)
        let v110 = OTAFleet.image(300_000, seed: 2)
        try fleet.addFirmware(v100, name: "gw", version: "1.0.0", hardware: Self.hardware, blockSize: "4KiB")
        let added = try fleet.addFirmware(v110, name: "gw", version: "1.1.0", hardware: Self.hardware, blockSize: "16KiB")
        try fleet.addFirmware(OTAFleet.image(50_000, seed: 3), name: "gw", version: "1.2.0", hardware: "board-other")
        // The OTA config fields are checked when signing: a relative health check or a bad hardware id is refused.
        let relative = try fleet.warden.run([
            "device", "config", device.id, "--broker", "mqtts://127.0.0.1:\(fleet.port)", "--https-url", "https://127.0.0.1:9",
            "--health-check", "check.sh", "--out", fleet.dir.file("bad.json"),
        ])
        #expect(relative.status == 2 && relative.stderr.contains("absolute path"), "\(relative.stderr)")
        let badHardware = try fleet.warden.run([
            "device", "config", device.id, "--broker", "mqtts://127.0.0.1:\(fleet.port)", "--https-url", "https://127.0.0.1:9",
            "--hardware", "no spaces", "--out", fleet.dir.file("bad.json"),
        ])
        #expect(badHardware.status == 2, "\(badHardware.stderr)")
        #expect(!FileManager.default.fileExists(atPath: fleet.dir.file("bad.json")))
        let document = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: device.config))) as? [String: Any]
        #expect((document?["signed"] as? [String: Any])?["hardware"] as? String == Self.hardware, "the signed config carries the hardware id")

        let log = fleet.dir.file("agent.log")
        let agent = try fleet.start(device, log: log)
        defer { agent.stop(SIGKILL, grace: 0) }

        let install = try fleet.createRollout("gw@1.1.0", group: "lab")
        #expect(fleet.waitForRollout(install, "succeeded"), "install: \(OTAFleet.text(log).suffix(3000))")
        let image = try #require(OTAFleet.activeImage(device))
        #expect(image == v110 && image == Array(FileManager.default.contents(atPath: added.path) ?? Data()), "the active slot holds exactly the added file")
        #expect(OTAFleet.text(log).contains("reported downloading for rollout \(install)"))
        #expect(OTAFleet.text(log).contains("reported succeeded for rollout \(install)"))
        #expect(OTAFleet.job(device)?["phase"] as? String == "succeeded")

        // A downgrade: refused before any download, reported failed, the active slot unchanged.
        let downgrade = try fleet.createRollout("gw@1.0.0", group: "lab")
        #expect(fleet.waitForRollout(downgrade, "failed"), "downgrade: \(OTAFleet.text(log).suffix(3000))")
        #expect(fleet.rolloutStatus(downgrade).reasons.keys.contains { $0.hasPrefix("downgrade below floor") }, "\(fleet.rolloutStatus(downgrade))")
        #expect(OTAFleet.activeImage(device) == v110)

        // An image for other hardware: refused the same way.
        let other = try fleet.createRollout("gw@1.2.0", group: "lab")
        #expect(fleet.waitForRollout(other, "failed"), "hardware: \(OTAFleet.text(log).suffix(3000))")
        #expect(fleet.rolloutStatus(other).reasons.keys.contains { $0.hasPrefix("hardware mismatch") }, "\(fleet.rolloutStatus(other))")
        #expect(OTAFleet.activeImage(device) == v110)
        let status = try String(contentsOfFile: device.state + "/slots/boot.json", encoding: .utf8)
        #expect(status.contains("\"trial\" : null") || status.contains("\"trial\":null"), "no install pending: \(status)")
        #expect(agent.isRunning)

        // The retained assignment itself (read as the device, with the agent stopped): none once every assignment
        // ended; published for a new rollout; cleared again when that rollout is aborted.
        agent.stop(SIGTERM)
        #expect(try Self.retainedAssignment(fleet, device) == nil)
        try fleet.addFirmware(OTAFleet.image(20_000, seed: 4), name: "gw", version: "1.3.0", hardware: Self.hardware)
        let pending = try fleet.createRollout("gw@1.3.0", group: "lab")
        var retained: [String: Any]?
        #expect(OTAFleet.waitUntil(timeout: 10) {
            retained = try? Self.retainedAssignment(fleet, device)
            return retained != nil
        })
        #expect(retained?["rollout"] as? Int == pending && retained?["target"] as? String == "gw/1.3.0", "\(String(describing: retained))")
        try OTAFleet.ok(try fleet.warden.run(["rollout", "abort", String(pending)]), "rollout abort")
        #expect(OTAFleet.waitUntil(timeout: 10) {
            do { return try Self.retainedAssignment(fleet, device) == nil } catch { return false }
        }, "cleared after the abort")
    }

    /// The retained assignment of `device`, read with its own identity (nil if none is retained).
    static func retainedAssignment(_ fleet: OTAFleet, _ device: OTAFleet.Device) throws -> [String: Any]? {
        let result = try WardenProcess.launch("/usr/bin/mosquitto_sub", [
            "-h", "127.0.0.1", "-p", String(fleet.port), "-V", "mqttv5", "-q", "1", "-t", "d/\(device.id)/down/ota/assignment",
            "--retained-only", "-C", "1", "-W", "2", "--cafile", fleet.brokerDir + "/ca.pem",
            "--cert", device.state + "/device.crt.pem", "--key", device.state + "/device.key",
        ])
        let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !line.isEmpty else {
            guard result.status == 27 || result.status == 0 else { throw TestSupportError("mosquitto_sub: \(result.combined)") }
            return nil
        }
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }
}

extension OTAAgentTests {
    /// The default policy plus a rogue client that may publish where only the authority should (a compromised broker
    /// ACL or a man in the middle): forged blocks on a device's block topic, and retained TUF metadata.
    static let roguePolicy = """
        { "version": 1, "description": "default + a rogue publisher",
          "statements": [
            { "sid": "device-connect-self", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:connect"], "resources": ["client:${device.id}"] },
            { "sid": "device-publish-own-up", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:publish"], "resources": ["topic:d/${device.id}/up/#"] },
            { "sid": "device-receive-own-down", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:d/${device.id}/down/#"] },
            { "sid": "device-read-firmware-metadata", "effect": "allow", "principals": ["device:*"], "actions": ["mqtt:subscribe", "mqtt:receive"], "resources": ["topic:warden/tuf/#"] },
            { "sid": "rogue", "effect": "allow", "principals": ["device:rogue-1"], "actions": ["mqtt:publish"],
              "resources": ["topic:warden/tuf/#", "topic:d/+/down/ota/block"] } ] }
        """

    /// Publishes `payload` as the rogue client with mosquitto_pub (QoS 1, MQTT 5).
    static func roguePublish(_ fleet: OTAFleet, rogue: (key: String, cert: String), topic: String, payload: [UInt8], retain: Bool) throws {
        let file = try fleet.dir.write("rogue-\(UUID().uuidString).bin", payload)
        var arguments = [
            "-h", "127.0.0.1", "-p", String(fleet.port), "-V", "mqttv5", "-q", "1", "-i", "rogue-1", "-t", topic, "-f", file,
            "--cafile", fleet.brokerDir + "/ca.pem", "--cert", rogue.cert, "--key", rogue.key,
        ]
        if retain { arguments.append("-r") }
        let result = try WardenProcess.launch("/usr/bin/mosquitto_pub", arguments)
        guard result.status == 0 else { throw TestSupportError("mosquitto_pub failed: \(result.combined)") }
    }

    @Test("forged blocks (the authority withholds its corrupted copy; a rogue publishes bad blocks) are rejected at their index → failed, nothing installed; an expired but correctly signed timestamp on the retained topic (freeze attack) → failed 'timestamp expired'")
    func refuseTamperedBlocksAndExpiredTimestamp() throws {
        let fleet = try OTAFleet(policy: Self.roguePolicy)
        let device = try fleet.enroll("gw-ota-2", group: "lab", hardware: Self.hardware)
        let rogueKeys = try DeviceKeys.make("rogue-1", in: fleet.dir)
        let rogue = (key: rogueKeys.key, cert: fleet.dir.file("rogue.crt.pem"))
        try OTAFleet.ok(try fleet.warden.run(["device", "enroll", "rogue-1", "--csr", rogueKeys.csr, "--out", rogue.cert]), "enroll rogue")
        let base = OTAFleet.image(40_000, seed: 10)
        try fleet.addFirmware(base, name: "gw", version: "1.0.0", hardware: Self.hardware)
        let log = fleet.dir.file("agent.log")
        let agent = try fleet.start(device, log: log)
        defer { agent.stop(SIGKILL, grace: 0) }
        let first = try fleet.createRollout("gw@1.0.0", group: "lab")
        #expect(fleet.waitForRollout(first, "succeeded"), "\(OTAFleet.text(log).suffix(3000))")
        #expect(OTAFleet.activeImage(device) == base)

        // gw@2.0.0 (4 blocks of 64 KiB): the authority's stored copy is corrupted after `firmware add`, so its block
        // service withholds it (`unavailable`) instead of serving a bad block; the rogue then publishes forged blocks.
        let v2 = OTAFleet.image(200_000, seed: 11)
        let added = try fleet.addFirmware(v2, name: "gw", version: "2.0.0", hardware: Self.hardware)
        let stored = fleet.dir.file("home") + "/firmware/" + added.sha256
        var corrupted = v2
        corrupted[100] ^= 0xFF
        try Data(corrupted).write(to: URL(fileURLWithPath: stored))
        let tampered = try fleet.createRollout("gw@2.0.0", group: "lab")
        #expect(OTAFleet.waitUntil(timeout: 20) { OTAFleet.text(log).contains("downloading gw/2.0.0") }, "\(OTAFleet.text(log).suffix(3000))")
        let forged = try OTAWire.BlockMessage(
            header: OTAWire.BlockHeader(requestID: 1, targetSHA256: Digest.bytes(fromHex: added.sha256)!, blockSize: 65536, blockIndex: 0, blockCount: 4),
            proof: [[UInt8](repeating: 7, count: 32), [UInt8](repeating: 9, count: 32)], data: corrupted.prefix(65536).map { $0 }
        ).encoded()
        for _ in 0..<3 {
            try Self.roguePublish(fleet, rogue: rogue, topic: "d/\(device.id)/down/ota/block", payload: forged, retain: false)
        }
        #expect(fleet.waitForRollout(tampered, "failed"), "tampered: \(OTAFleet.text(log).suffix(3000))")
        #expect(fleet.rolloutStatus(tampered).reasons.keys.contains { $0.hasPrefix("block 0 rejected 3 times") }, "\(fleet.rolloutStatus(tampered))")
        #expect(OTAFleet.text(log).contains("block service withholds the image (unavailable"), "the authority refused to serve its corrupted copy")
        #expect(OTAFleet.activeImage(device) == base)
        #expect(!FileManager.default.fileExists(atPath: device.state + "/ota/download/" + added.sha256 + ".part"), "the partial download is discarded")

        // gw@3.0.0, then a correctly signed timestamp that has expired is put on the retained topic by the rogue
        // (what a frozen mirror or a replaying broker would serve): the agent refuses to act on it.
        let v3 = OTAFleet.image(30_000, seed: 12)
        try fleet.addFirmware(v3, name: "gw", version: "3.0.0", hardware: Self.hardware)
        Thread.sleep(forTimeInterval: 2)  // the TUF publisher polls every 0.5 s
        let home = fleet.dir.file("home")
        let current = try SignedMetadata<TimestampMetadata>.parse(Array(try Data(contentsOf: URL(fileURLWithPath: home + "/tuf/metadata/timestamp.json"))))
        let roots = try FileManager.default.contentsOfDirectory(atPath: home + "/tuf/metadata").filter { $0.hasSuffix(".root.json") }.sorted()
        let root = try SignedMetadata<RootMetadata>.parse(Array(try Data(contentsOf: URL(fileURLWithPath: home + "/tuf/metadata/" + roots.last!))))
        let keyID = try #require(root.payload.role(.timestamp).keyIDs.first)
        let key = try SigningKey.open(pem: try String(contentsOfFile: home + "/tuf/keys/\(keyID).pem", encoding: .utf8), passphrase: Array("correct horse battery staple".utf8))
        var expired = SignedMetadata(TimestampMetadata(version: current.payload.version + 1, expires: Date().addingTimeInterval(-3600), snapshot: current.payload.snapshot))
        try expired.sign(with: [key])
        try Self.roguePublish(fleet, rogue: rogue, topic: "warden/tuf/timestamp.json", payload: expired.fileBytes, retain: true)
        Thread.sleep(forTimeInterval: 0.5)
        let frozen = try fleet.createRollout("gw@3.0.0", group: "lab")
        #expect(fleet.waitForRollout(frozen, "failed"), "expired: \(OTAFleet.text(log).suffix(3000))")
        #expect(fleet.rolloutStatus(frozen).reasons.keys.contains { $0.hasPrefix("timestamp expired") }, "\(fleet.rolloutStatus(frozen))")
        #expect(OTAFleet.activeImage(device) == base)
        #expect(agent.isRunning)
    }
}

extension OTAAgentTests {
    /// A loopback TCP relay that paces the broker → client direction to `rate` bytes per second, so a download
    /// takes seconds and the test can kill the agent in the middle of it.
    static let throttle = """
        import asyncio, sys
        listen, upstream, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
        async def pipe(reader, writer, paced):
            try:
                while True:
                    data = await reader.read(16384)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
                    if paced:
                        await asyncio.sleep(len(data) / rate)
            except Exception:
                pass
            finally:
                try:
                    writer.close()
                except Exception:
                    pass
        async def handle(client_reader, client_writer):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", upstream)
            except Exception:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, writer, False), pipe(reader, client_writer, True))
        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", listen)
            print("listening", flush=True)
            async with server:
                await server.serve_forever()
        asyncio.run(main())
        """

    @Test("kill -9 in the middle of an 8 MiB download → the restarted agent resumes from its bitmap and installs byte-identical; then a release whose health check fails is rolled back: the previous release stays active, reported failed; kill -9 during a health check → recovered at start, committed without reinstalling")
    func resumeAfterKillThenHealthCheckRollback() throws {
        let fleet = try OTAFleet()
        let proxyPort = try MosquittoProcess.freeLoopbackPort()
        let proxyLog = fleet.dir.file("proxy.log")
        let proxy = try SpawnedProcess(
            "/usr/bin/env", ["python3", try fleet.dir.write("throttle.py", Self.throttle), String(proxyPort), String(fleet.port), String(3 * 1024 * 1024)],
            output: proxyLog)
        fleet.own(proxy)
        defer { proxy.stop(SIGKILL, grace: 0) }
        #expect(OTAFleet.waitUntil(timeout: 10) { OTAFleet.text(proxyLog).contains("listening") })
        let marker = fleet.dir.file("unhealthy")
        let hang = fleet.dir.file("hang")
        let started = fleet.dir.file("check-started")
        let check = try fleet.dir.write("health.sh", """
            #!/bin/sh
            if [ -e \(marker) ]; then echo "self-test failed"; exit 1; fi
            if [ -e \(hang) ]; then echo $$ > \(started); exec sleep 30; fi
            exit 0

            """)
        chmod(check, 0o755)
        let device = try fleet.enroll("gw-ota-3", group: "lab", hardware: Self.hardware, healthCheck: check, brokerPort: proxyPort)
        let big = OTAFleet.image(8 * 1024 * 1024, seed: 20)
        try fleet.addFirmware(big, name: "gw", version: "1.0.0", hardware: Self.hardware, blockSize: "64KiB")

        let firstLog = fleet.dir.file("agent1.log")
        let first = try fleet.start(device, log: firstLog)
        let install = try fleet.createRollout("gw@1.0.0", group: "lab")
        // Killed once at least 32 of the 128 blocks are durable (the progress line follows the checkpoint).
        let progressed = OTAFleet.waitUntil(timeout: 40) {
            OTAFleet.text(firstLog).split(separator: "\n").contains { line in
                guard let range = line.range(of: "downloaded "), let held = Int(line[range.upperBound...].prefix { $0.isNumber }) else { return false }
                return held >= 32 && held < 128
            }
        }
        #expect(progressed, "\(OTAFleet.text(firstLog).suffix(3000))")
        first.stop(SIGKILL, grace: 0)
        #expect(OTAFleet.activeImage(device) == nil, "nothing installed yet")

        let secondLog = fleet.dir.file("agent2.log")
        let second = try fleet.start(device, log: secondLog)
        defer { second.stop(SIGKILL, grace: 0) }
        #expect(fleet.waitForRollout(install, "succeeded", timeout: 60), "\(OTAFleet.text(secondLog).suffix(3000))")
        let text = OTAFleet.text(secondLog)
        let resumedLine = text.split(separator: "\n").first { $0.contains("resuming at ") }
        let resumedAt = resumedLine.flatMap { line in line.range(of: "resuming at ").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) } } ?? 0
        #expect(resumedAt >= 32 && resumedAt < 128, "\(text.suffix(3000))")
        let fetchedLine = text.split(separator: "\n").first { $0.contains("download complete: fetched ") }
        let fetched = fetchedLine.flatMap { line in line.range(of: "fetched ").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) } } ?? -1
        #expect(fetched > 0 && fetched <= 128 - resumedAt, "fetched \(fetched) blocks after resuming at \(resumedAt)")
        #expect(OTAFleet.activeImage(device) == big, "the installed image is byte-identical")
        #expect(text.contains("running the health check"))

        // The next release fails its health check: rolled back, the previous release stays active.
        let next = OTAFleet.image(100_000, seed: 21)
        try fleet.addFirmware(next, name: "gw", version: "1.1.0", hardware: Self.hardware)
        _ = FileManager.default.createFile(atPath: marker, contents: Data())
        let broken = try fleet.createRollout("gw@1.1.0", group: "lab")
        #expect(fleet.waitForRollout(broken, "failed", timeout: 40), "\(OTAFleet.text(secondLog).suffix(3000))")
        #expect(fleet.rolloutStatus(broken).reasons.keys.contains { $0.hasPrefix("health check failed") }, "\(fleet.rolloutStatus(broken))")
        #expect(OTAFleet.activeImage(device) == big, "the previous release is still active")
        let rollback = try String(contentsOfFile: device.state + "/slots/rollback.json", encoding: .utf8)
        #expect(rollback.contains("health check failed"))
        #expect(second.isRunning)

        // kill -9 while the health check of gw@1.2.0 runs (installed in the trial slot, not committed): the restarted
        // agent recovers the slot store before connecting, re-runs the health check, commits without downloading or
        // installing again, and sends the succeeded report it queued offline once connected.
        try FileManager.default.removeItem(atPath: marker)
        _ = FileManager.default.createFile(atPath: hang, contents: Data())
        let v120 = OTAFleet.image(120_000, seed: 22)
        try fleet.addFirmware(v120, name: "gw", version: "1.2.0", hardware: Self.hardware)
        let resumed = try fleet.createRollout("gw@1.2.0", group: "lab")
        #expect(OTAFleet.waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: started) && !OTAFleet.text(started).isEmpty }, "\(OTAFleet.text(secondLog).suffix(2000))")
        second.stop(SIGKILL, grace: 0)
        if let checkPID = Int32(OTAFleet.text(started).trimmingCharacters(in: .whitespacesAndNewlines)) { kill(checkPID, SIGKILL) }
        #expect(OTAFleet.activeImage(device) == big, "the trial is not committed")
        try FileManager.default.removeItem(atPath: hang)
        let thirdLog = fleet.dir.file("agent3.log")
        let third = try fleet.start(device, log: thirdLog)
        defer { third.stop(SIGKILL, grace: 0) }
        #expect(fleet.waitForRollout(resumed, "succeeded", timeout: 30), "\(OTAFleet.text(thirdLog).suffix(3000))")
        #expect(OTAFleet.activeImage(device) == v120)
        let recovered = OTAFleet.text(thirdLog)
        #expect(recovered.contains("slot recovery: trialPending"), "\(recovered.suffix(2000))")
        #expect(!recovered.contains("downloading gw/") && !recovered.contains("installed gw@"), "nothing downloaded or installed again")
        #expect(recovered.contains("reported succeeded for rollout \(resumed)"))
    }
}
