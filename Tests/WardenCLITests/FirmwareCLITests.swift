import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenPKI
import WardenTestSupport
import WardenUpdate

/// `warden firmware …` through the real executable.
@Suite(.serialized) struct FirmwareCLITests {
    /// A fleet with a CA and a firmware repository.
    static func repository() throws -> Fleet {
        let fleet = try Fleet()
        let created = try fleet.run("firmware", "keys", "init")
        guard created.status == 0 else { throw TestSupportError("firmware keys init failed: \(created.stderr)") }
        return fleet
    }

    static func metadataSnapshot(_ fleet: Fleet) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in fleet.files(in: fleet.home + "/tuf/metadata") {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: fleet.home + "/tuf/metadata/" + name))
        }
        return files
    }

    @Test func keysInitCreatesEncryptedKeysAndRefusesToOverwrite() throws {
        let fleet = try Self.repository()
        let keys = fleet.files(in: fleet.home + "/tuf/keys")
        #expect(keys.count == 6)
        for key in keys {
            let path = fleet.home + "/tuf/keys/" + key
            #expect(SecureFile.mode(of: path) == 0o600)
            #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        }
        #expect(fleet.files(in: fleet.home + "/tuf/metadata") == ["1.root.json", "1.snapshot.json", "1.targets.json", "root.json", "timestamp.json"])
        let root = try SignedMetadata<RootMetadata>.parse(Array(try Data(contentsOf: URL(fileURLWithPath: fleet.home + "/tuf/metadata/1.root.json"))))
        #expect(root.payload.role(.root).threshold == 2 && root.payload.role(.root).keyIDs.count == 3)
        #expect(Set(root.payload.role(.root).keyIDs.map { root.payload.keys[$0]!.scheme }) == ["ed25519", "ecdsa-sha2-nistp256"])
        // Expiries: root about a year, the online roles as documented.
        #expect(abs(root.payload.expires.timeIntervalSinceNow - 365 * 86_400) < 600)
        let before = try Self.metadataSnapshot(fleet)
        let again = try fleet.run("firmware", "keys", "init")
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists") && again.oneLineError)
        #expect(try Self.metadataSnapshot(fleet) == before)
        #expect(try fleet.run("audit", "log").stdout.contains("firmware.keys.init"))
    }

    @Test func addListsAReleaseAndRefusesDuplicatesAndGoingBackwards() throws {
        let fleet = try Self.repository()
        let image = (0..<150_000).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
        let imagePath = try fleet.dir.write("fw.bin", image)
        let added = try fleet.run(
            "firmware", "add", imagePath, "--name", "sensor", "--version", "1.2.0", "--hardware", "board-a", "board-b", "--block-size", "4KiB", "--json")
        try #require(added.status == 0, "\(added.stderr)")
        let listed = try fleet.run("firmware", "list", "--json")
        let releases = try JSONDecoder().decode([FirmwareRelease].self, from: Data(listed.stdout.utf8))
        let release = try #require(releases.first)
        #expect(releases.count == 1)
        #expect(release.target == "sensor/1.2.0" && release.version == "1.2.0" && release.hardware == ["board-a", "board-b"])
        #expect(release.length == 150_000 && release.releaseCounter == 1 && release.blockSize == 4096)
        #expect(release.sha256 == Digest.hex(Digest.sha256(image)) && release.sha512 == Digest.hex(Digest.sha512(image)))
        #expect(release.merkleRoot == (try BlockIndex(image: image, blockSize: 4096)).merkleRootHex)
        // The image is stored under its content hash.
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: fleet.home + "/firmware/" + release.sha256))) == image)
        #expect(try fleet.run("audit", "log").stdout.contains("firmware.add"))

        let before = try Self.metadataSnapshot(fleet)
        let refusals: [([String], Int32, String)] = [
            (["--name", "sensor", "--version", "1.2.0", "--hardware", "board-a"], 1, "already published"),
            (["--name", "sensor", "--version", "1.1.9", "--hardware", "board-a"], 1, "not newer"),
            (["--name", "sensor", "--version", "1.3.0", "--hardware", "board-a", "--release-counter", "1"], 1, "release counter"),
            (["--name", "sensor", "--version", "1.3.0", "--hardware", "board-a", "--block-size", "3000"], 2, "block"),
            (["--name", "sensor", "--version", "1.3.0"], 2, "hardware"),
            (["--name", "Sensor!", "--version", "1.3.0", "--hardware", "board-a"], 2, "firmware name"),
            (["--name", "sensor", "--version", "1.3.0-beta", "--hardware", "board-a"], 2, "version"),
        ]
        for (arguments, status, message) in refusals {
            let result = try fleet.warden.run(["firmware", "add", imagePath] + arguments)
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message) && result.oneLineError, "\(arguments): \(result.stderr)")
        }
        let missing = try fleet.run("firmware", "add", fleet.dir.file("nope.bin"), "--name", "sensor", "--version", "2.0.0", "--hardware", "a")
        #expect(missing.status == 2)
        // Nothing was written by any refusal.
        #expect(try Self.metadataSnapshot(fleet) == before)
        #expect(fleet.files(in: fleet.home + "/firmware") == [release.sha256])

        // The next release gets the next counter; another name starts at 1.
        #expect(try fleet.run("firmware", "add", imagePath, "--name", "sensor", "--version", "1.10.0", "--hardware", "board-a").status == 0)
        #expect(try fleet.run("firmware", "add", imagePath, "--name", "gateway", "--version", "0.1", "--hardware", "gw").status == 0)
        let all = try JSONDecoder().decode([FirmwareRelease].self, from: Data(try fleet.run("firmware", "list", "--json").stdout.utf8))
        #expect(all.map(\.target) == ["gateway/0.1", "sensor/1.2.0", "sensor/1.10.0"])
        #expect(all.map(\.releaseCounter) == [1, 1, 2])
    }

    @Test func rotateRootIsSignedByOldAndNewRootAndExportedRootFollows() throws {
        let fleet = try Self.repository()
        let rootV1 = Array(try Data(contentsOf: URL(fileURLWithPath: fleet.home + "/tuf/metadata/1.root.json")))
        let rotated = try fleet.run("firmware", "keys", "rotate", "root")
        try #require(rotated.status == 0, "\(rotated.stderr)")
        let rootV2 = Array(try Data(contentsOf: URL(fileURLWithPath: fleet.home + "/tuf/metadata/2.root.json")))
        var trusted = try TrustedMetadataSet(trustedRoot: rootV1, now: Date())
        try trusted.updateRoot(rootV2)
        let old = try SignedMetadata<RootMetadata>.parse(rootV1).payload
        let new = try SignedMetadata<RootMetadata>.parse(rootV2).payload
        #expect(Set(old.role(.root).keyIDs).isDisjoint(with: new.role(.root).keyIDs))
        #expect(old.role(.timestamp) == new.role(.timestamp))
        let exported = fleet.dir.file("root.json")
        #expect(try fleet.run("firmware", "root", "--out", exported).status == 0)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: exported))) == rootV2)

        // Rotating an online role re-signs it: a client from root v1 follows the whole chain.
        #expect(try fleet.run("firmware", "keys", "rotate", "targets").status == 0)
        #expect(try fleet.run("firmware", "keys", "rotate", "bogus").status == 2)
        #expect(try fleet.run("audit", "log").stdout.contains("firmware.keys.rotate"))

        // With two of the three root keys moved offline, rotation is refused and nothing is published.
        let keys = fleet.home + "/tuf/keys/"
        let current = try SignedMetadata<RootMetadata>.parse(Array(try Data(contentsOf: URL(fileURLWithPath: fleet.home + "/tuf/metadata/3.root.json")))).payload
        let offline = try TemporaryDirectory()
        for id in current.role(.root).keyIDs.prefix(2) {
            try FileManager.default.moveItem(atPath: keys + id + ".pem", toPath: offline.file(id + ".pem"))
        }
        let refused = try fleet.run("firmware", "keys", "rotate", "root")
        #expect(refused.status == 2 && refused.stderr.contains("offline"))
        #expect(!FileManager.default.fileExists(atPath: fleet.home + "/tuf/metadata/4.root.json"))
    }

    @Test func aFailedSigningLeavesNothingBehind() throws {
        let fleet = try Self.repository()
        let before = try Self.metadataSnapshot(fleet)
        var wrong = fleet.warden
        wrong.environment["WARDEN_PASSPHRASE"] = "not the passphrase"
        let image = try fleet.dir.write("fw.bin", Array(repeating: 0xA5, count: 20_000))
        let result = try wrong.run(["firmware", "add", image, "--name", "sensor", "--version", "1.0.0", "--hardware", "board-a"])
        #expect(result.status == 2 && result.oneLineError, "\(result.stderr)")
        // Neither metadata nor a stray image: the image stored before signing is removed again.
        #expect(try Self.metadataSnapshot(fleet) == before)
        #expect(fleet.files(in: fleet.home + "/firmware").isEmpty)
        #expect(try JSONDecoder().decode([FirmwareRelease].self, from: Data(try fleet.run("firmware", "list", "--json").stdout.utf8)).isEmpty)
    }

    @Test func commandsNeedARepository() throws {
        let fleet = try Fleet()
        let listed = try fleet.run("firmware", "list")
        #expect(listed.status == 2 && listed.stderr.contains("firmware keys init"))
        #expect(try fleet.run("firmware", "root").status == 2)
    }
}
