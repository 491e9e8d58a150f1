import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport
import WardenUpdate

/// `warden-agent tuf-client` (the tuf-conformance CLI) against a repository made by `warden firmware keys init` +
/// `firmware add`, served as static files by `python3 -m http.server` on 127.0.0.1.
@Suite(.serialized) struct TUFClientTests {
    /// A Warden home with a firmware repository, and a static copy of it served over HTTP in the layout of
    /// `warden serve` (`metadata/`, `targets/<name>/<sha256>.<version>`).
    final class Repository: @unchecked Sendable {
        // @unchecked: the fields are set once in init; the server process is itself Sendable.
        let dir: TemporaryDirectory
        let warden: WardenProcess
        let served: String
        let port: Int
        let server: SpawnedProcess
        static let passphrase = "correct horse battery staple"

        init() throws {
            dir = try TemporaryDirectory()
            warden = WardenProcess(home: dir.file("home"), passphrase: Self.passphrase)
            served = dir.file("served")
            for arguments in [["ca", "init", "--org", "TUF Fleet"], ["firmware", "keys", "init"]] {
                let result = try warden.run(arguments)
                guard result.status == 0 else { throw TestSupportError("warden \(arguments): \(result.stderr)") }
            }
            try FileManager.default.createDirectory(atPath: served + "/metadata", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: served + "/targets", withIntermediateDirectories: true)
            port = try MosquittoProcess.freeLoopbackPort()
            server = try SpawnedProcess(
                try Self.which("python3"), ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", served],
                output: dir.file("http.log"))
            let deadline = Date().addingTimeInterval(15)
            while !MosquittoProcess.canConnect(port: port) {
                guard Date() < deadline, server.isRunning else { throw TestSupportError("python3 -m http.server did not start") }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }

        deinit { server.stop(SIGKILL, grace: 0) }

        static func which(_ name: String) throws -> String {
            for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
            throw TestSupportError("\(name) is not on PATH")
        }

        var home: String { warden.home }
        var metadataURL: String { "http://127.0.0.1:\(port)/metadata" }
        var targetsURL: String { "http://127.0.0.1:\(port)/targets" }
        var trustedRoot: String { home + "/tuf/metadata/1.root.json" }

        /// `firmware add` of `image` as `name@version`, then a copy of the repository into the served directory.
        func add(_ image: [UInt8], name: String, version: String) throws {
            let path = try dir.write("\(name)-\(version).bin", image)
            let added = try warden.run(["firmware", "add", path, "--name", name, "--version", version, "--hardware", "board-a"])
            guard added.status == 0 else { throw TestSupportError("firmware add: \(added.stderr)") }
            try publish()
            let hash = Digest.hex(Digest.sha256(image))
            try FileManager.default.createDirectory(atPath: served + "/targets/" + name, withIntermediateDirectories: true)
            try Data(image).write(to: URL(fileURLWithPath: served + "/targets/\(name)/\(hash).\(version)"))
        }

        /// Copies every metadata file to the served directory.
        func publish() throws {
            for file in try FileManager.default.contentsOfDirectory(atPath: home + "/tuf/metadata") where file.hasSuffix(".json") {
                let data = try Data(contentsOf: URL(fileURLWithPath: home + "/tuf/metadata/" + file))
                try data.write(to: URL(fileURLWithPath: served + "/metadata/" + file))
            }
        }

        /// The served bytes of a metadata file.
        func servedMetadata(_ name: String) throws -> [UInt8] {
            Array(try Data(contentsOf: URL(fileURLWithPath: served + "/metadata/" + name)))
        }

        /// Replaces a served metadata file.
        func serve(_ bytes: [UInt8], as name: String) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: served + "/metadata/" + name))
        }

        /// The online timestamp key, opened with the Warden passphrase.
        func timestampKey() throws -> SigningKey {
            let root = try SignedMetadata<RootMetadata>.parse(Array(try Data(contentsOf: URL(fileURLWithPath: trustedRoot))))
            let keyID = try #require(root.payload.role(.timestamp).keyIDs.first)
            let pem = try String(contentsOfFile: home + "/tuf/keys/\(keyID).pem", encoding: .utf8)
            return try SigningKey.open(pem: pem, passphrase: Array(Self.passphrase.utf8))
        }

        /// Runs `warden-agent tuf-client` with the conformance flags for `client` (a metadata dir) and `targets`.
        func client(_ metadataDir: String, _ action: [String], targetName: String? = nil, targetDir: String? = nil) throws -> WardenProcess.Result {
            var arguments = ["tuf-client", "--metadata-dir", metadataDir, "--metadata-url", metadataURL]
            if let targetName, let targetDir {
                arguments += ["--target-name", targetName, "--target-base-url", targetsURL, "--target-dir", targetDir]
            }
            return try Agent.run(arguments + action)
        }

        /// A fresh client directory, initialised with the trusted root.
        func newClient(_ name: String) throws -> String {
            let metadataDir = dir.file(name)
            try FileManager.default.createDirectory(atPath: metadataDir, withIntermediateDirectories: true)
            let initialised = try Agent.run(["tuf-client", "--metadata-dir", metadataDir, "init", trustedRoot])
            guard initialised.status == 0 else { throw TestSupportError("tuf-client init: \(initialised.stderr)") }
            return metadataDir
        }
    }

    static func image(_ size: Int, seed: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) } }

    @Test func downloadIsByteIdenticalAndSeesANewRelease() throws {
        let repository = try Repository()
        let image = Self.image(200_000, seed: 1)
        try repository.add(image, name: "gw", version: "1.0.0")
        let metadataDir = try repository.newClient("client")
        #expect(try Data(contentsOf: URL(fileURLWithPath: metadataDir + "/root.json")) == Data(contentsOf: URL(fileURLWithPath: repository.trustedRoot)))

        let refreshed = try repository.client(metadataDir, ["refresh"])
        #expect(refreshed.status == 0, "\(refreshed.stderr)")
        for name in ["root.json", "timestamp.json", "snapshot.json", "targets.json"] {
            #expect(FileManager.default.fileExists(atPath: metadataDir + "/" + name), "\(name)")
        }
        let targetDir = repository.dir.file("downloads")
        let downloaded = try repository.client(metadataDir, ["download"], targetName: "gw/1.0.0", targetDir: targetDir)
        #expect(downloaded.status == 0, "\(downloaded.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: targetDir + "/gw%2F1.0.0"))) == image)

        // A second release appears on refresh and downloads too; an unknown target fails.
        let next = Self.image(70_000, seed: 9)
        try repository.add(next, name: "gw", version: "1.1.0")
        let second = try repository.client(metadataDir, ["download"], targetName: "gw/1.1.0", targetDir: targetDir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: targetDir + "/gw%2F1.1.0"))) == next)
        let unknown = try repository.client(metadataDir, ["download"], targetName: "gw/9.9.9", targetDir: targetDir)
        #expect(unknown.status == 1 && unknown.oneLineError && unknown.stderr.contains("gw/9.9.9"))
    }

    @Test func tamperedTargetBytesAreRefusedAndNothingIsWritten() throws {
        let repository = try Repository()
        let image = Self.image(100_000, seed: 2)
        try repository.add(image, name: "gw", version: "1.0.0")
        let hash = Digest.hex(Digest.sha256(image))
        let servedImage = repository.served + "/targets/gw/\(hash).1.0.0"
        let targetDir = repository.dir.file("downloads")
        let metadataDir = try repository.newClient("client")

        // Same length, one flipped byte: the hash check refuses it.
        var tampered = image
        tampered[50_000] ^= 0x01
        try Data(tampered).write(to: URL(fileURLWithPath: servedImage))
        let flipped = try repository.client(metadataDir, ["download"], targetName: "gw/1.0.0", targetDir: targetDir)
        #expect(flipped.status == 1 && flipped.oneLineError, "\(flipped.stderr)")
        #expect(!FileManager.default.fileExists(atPath: targetDir + "/gw%2F1.0.0"))

        // Longer than the signed length: refused while reading (endless data).
        try Data(image + [0x00]).write(to: URL(fileURLWithPath: servedImage))
        let longer = try repository.client(metadataDir, ["download"], targetName: "gw/1.0.0", targetDir: targetDir)
        #expect(longer.status == 1 && longer.oneLineError, "\(longer.stderr)")
        #expect(!FileManager.default.fileExists(atPath: targetDir + "/gw%2F1.0.0"))

        // A tampered cached copy is not trusted: it is downloaded again and replaced by the verified image.
        try Data(image).write(to: URL(fileURLWithPath: servedImage))
        try FileManager.default.createDirectory(atPath: targetDir, withIntermediateDirectories: true)
        try Data(tampered).write(to: URL(fileURLWithPath: targetDir + "/gw%2F1.0.0"))
        let repaired = try repository.client(metadataDir, ["download"], targetName: "gw/1.0.0", targetDir: targetDir)
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: targetDir + "/gw%2F1.0.0"))) == image)
    }

    @Test func expiredTimestampIsRefused() throws {
        let repository = try Repository()
        try repository.add(Self.image(10_000, seed: 3), name: "gw", version: "1.0.0")
        let current = try SignedMetadata<TimestampMetadata>.parse(try repository.servedMetadata("timestamp.json"))
        var expired = SignedMetadata(TimestampMetadata(
            version: current.payload.version + 1, expires: Date().addingTimeInterval(-3600), snapshot: current.payload.snapshot))
        try expired.sign(with: [try repository.timestampKey()])
        try repository.serve(expired.fileBytes, as: "timestamp.json")

        let metadataDir = try repository.newClient("client")
        let refreshed = try repository.client(metadataDir, ["refresh"])
        #expect(refreshed.status == 1 && refreshed.oneLineError, "\(refreshed.stderr)")
        #expect(refreshed.stderr.contains("expired"), "\(refreshed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: metadataDir + "/snapshot.json"))
        let targetDir = repository.dir.file("downloads")
        let downloaded = try repository.client(metadataDir, ["download"], targetName: "gw/1.0.0", targetDir: targetDir)
        #expect(downloaded.status == 1 && downloaded.oneLineError)
        #expect(!FileManager.default.fileExists(atPath: targetDir + "/gw%2F1.0.0"))

        // The same metadata signed with a future expiry is accepted: the refusal was the expiry, not the signing.
        var fresh = SignedMetadata(TimestampMetadata(
            version: current.payload.version + 2, expires: Date().addingTimeInterval(3600), snapshot: current.payload.snapshot))
        try fresh.sign(with: [try repository.timestampKey()])
        try repository.serve(fresh.fileBytes, as: "timestamp.json")
        #expect(try repository.client(metadataDir, ["refresh"]).status == 0)
    }

    @Test func metadataVersionRollbackIsRefused() throws {
        let repository = try Repository()
        try repository.add(Self.image(10_000, seed: 4), name: "gw", version: "1.0.0")
        let oldTimestamp = try repository.servedMetadata("timestamp.json")
        try repository.add(Self.image(12_000, seed: 5), name: "gw", version: "1.1.0")
        let metadataDir = try repository.newClient("client")
        let refreshed = try repository.client(metadataDir, ["refresh"])
        try #require(refreshed.status == 0, "\(refreshed.stderr)")
        let trusted = try Data(contentsOf: URL(fileURLWithPath: metadataDir + "/timestamp.json"))

        // The repository (or a mirror) now serves the older, still validly signed and unexpired timestamp.
        try repository.serve(oldTimestamp, as: "timestamp.json")
        let rolledBack = try repository.client(metadataDir, ["refresh"])
        #expect(rolledBack.status == 1 && rolledBack.oneLineError, "\(rolledBack.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: metadataDir + "/timestamp.json")) == trusted)
        let targetDir = repository.dir.file("downloads")
        let downloaded = try repository.client(metadataDir, ["download"], targetName: "gw/1.1.0", targetDir: targetDir)
        #expect(downloaded.status == 1)

        // A fresh client with no history accepts the old state: the refusal came from the persisted version floor.
        let fresh = try repository.newClient("fresh")
        #expect(try repository.client(fresh, ["refresh"]).status == 0)
    }

    @Test func badInvocationsExitOne() throws {
        let dir = try TemporaryDirectory()
        let metadataDir = dir.file("client")
        // init with a file that is not root metadata; refresh before init; a non-http URL; a missing --target-name.
        let junk = try dir.write("root.json", "{\"signed\": {}}")
        let cases: [[String]] = [
            ["tuf-client", "--metadata-dir", metadataDir, "init", junk],
            ["tuf-client", "--metadata-dir", metadataDir, "init", dir.file("missing.json")],
            ["tuf-client", "--metadata-dir", metadataDir, "--metadata-url", "http://127.0.0.1:9/metadata", "refresh"],
            ["tuf-client", "--metadata-dir", metadataDir, "--metadata-url", "file:///etc", "refresh"],
            ["tuf-client", "--metadata-dir", metadataDir, "--metadata-url", "http://127.0.0.1:9/m", "download"],
        ]
        for arguments in cases {
            let result = try Agent.run(arguments)
            #expect(result.status == 1 && result.oneLineError, "\(arguments): \(result.status) \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: metadataDir + "/root.json"))
    }
}
