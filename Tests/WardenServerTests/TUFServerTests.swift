import Foundation
import Testing
@testable import WardenAuthority
import WardenCore
import WardenPKI
import WardenTestSupport
import WardenUpdate

@testable import WardenServer

/// Fetches repository files over HTTPS with curl (trust = the Warden root): Warden's own updater against the real
/// server, through the pluggable fetcher.
struct CurlFetcher: TUFFetcher {
    let base: String
    let caFile: String
    let scratch: TemporaryDirectory

    func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
        let output = scratch.file("fetch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: output) }
        let url = base + (kind == .metadata ? "/tuf/metadata/" : "/tuf/targets/") + path
        let result = try await ServerHarness.launch(
            "curl", ["-sS", "--max-time", "20", "--cacert", caFile, "--max-filesize", String(maxLength), "-o", output, "-w", "%{http_code}", url])
        let status = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        if status == 404 { return nil }
        guard result.status == 0, status == 200 else {
            throw WardenError.badInput("GET \(url): curl \(result.status), HTTP \(status) \(result.stderr)")
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }
}

/// python-tuf's ngclient run as a separate process (scripts/tuf_interop.py client).
struct PythonTUFClient {
    let metadataDirectory: String
    let base: String
    let caFile: String

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/tuf_interop.py").path

    /// Provisions `metadataDirectory` with `root` only.
    init(directory: String, root: [UInt8], base: String, caFile: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(root).write(to: URL(fileURLWithPath: directory + "/root.json"))
        metadataDirectory = directory
        self.base = base
        self.caFile = caFile
    }

    struct Outcome: Decodable {
        var targets: [String]
        var versions: [String: Int]
    }

    /// Refreshes (and downloads `target` to `out`); returns the outcome or the python exception line.
    func refresh(download target: String? = nil, to out: String? = nil) async throws -> Result<Outcome, PythonError> {
        var arguments = [Self.script, "client", metadataDirectory, base + "/tuf/metadata/", base + "/tuf/targets/", caFile]
        if let target, let out { arguments += [target, out] }
        let result = try await ServerHarness.launch("python3", arguments)
        guard result.status == 0 else { return .failure(PythonError(message: result.stderr)) }
        return .success(try JSONDecoder().decode(Outcome.self, from: Data(result.stdout.utf8)))
    }

    struct PythonError: Error {
        var message: String
    }
}

/// The full flow through the real `warden` executable: CLI repository, `warden serve` over HTTPS, python-tuf client.
@Suite(.serialized) struct TUFServeInteropTests {
    @Test(.timeLimit(.minutes(5))) func pythonTUFUpdatesFromWardenServeAcrossReleasesAndRootRotation() async throws {
        let directory = try TemporaryDirectory()
        let warden = WardenProcess(home: directory.file("home"))
        func run(_ arguments: [String]) throws -> WardenProcess.Result {
            let result = try warden.run(arguments)
            guard result.status == 0 else { throw TestSupportError("warden \(arguments.joined(separator: " ")) failed: \(result.stderr)") }
            return result
        }
        _ = try run(["ca", "init", "--org", "TUF Interop"])
        _ = try run(["firmware", "keys", "init"])
        let image = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let imagePath = try directory.write("fw-1.bin", image)
        _ = try run(["firmware", "add", imagePath, "--name", "sensor", "--version", "1.0.0", "--hardware", "board-a", "--block-size", "16KiB"])
        let rootPath = directory.file("trusted-root.json")
        _ = try run(["firmware", "root", "--out", rootPath])
        let root = Array(try Data(contentsOf: URL(fileURLWithPath: rootPath)))

        let port = try MosquittoProcess.freeLoopbackPort()
        let serve = try warden.start(["serve", "--https-port", String(port), "--no-broker"], output: directory.file("serve.log"))
        defer { serve.stop() }
        let base = "https://127.0.0.1:\(port)"
        let ca = warden.home + "/ca/root.crt.pem"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let probe = try await ServerHarness.launch("curl", ["-sS", "--max-time", "2", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", base + "/healthz"])
            if probe.stdout == "200" { break }
            try await Task.sleep(for: .milliseconds(200))
        }

        // 1. python-tuf, given only the exported root, refreshes and downloads the image byte-identical.
        let python = try PythonTUFClient(directory: directory.file("py-client"), root: root, base: base, caFile: ca)
        let out = directory.file("py-download/sensor-1.0.0")
        let first = try await python.refresh(download: "sensor/1.0.0", to: out).get()
        #expect(first.targets == ["sensor/1.0.0"])
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out))) == image)
        // Warden's own updater over HTTPS agrees.
        let ours = directory.file("our-client")
        try TUFUpdater.provision(trustedRoot: root, metadataDirectory: ours)
        var updater = TUFUpdater(metadataDirectory: ours, fetcher: CurlFetcher(base: base, caFile: ca, scratch: directory))
        try await updater.refresh()
        let info = try #require(updater.targetInfo("sensor/1.0.0"))
        #expect(try await updater.download("sensor/1.0.0", info: info) == image)
        #expect(info.blockSize == 16_384)
        #expect(info.merkleRoot == (try BlockIndex(image: image, blockSize: 16_384)).merkleRootHex)

        // 2. A second release is seen on refresh.
        let image2 = Array(image.reversed())
        _ = try run(["firmware", "add", try directory.write("fw-2.bin", image2), "--name", "sensor", "--version", "1.1.0", "--hardware", "board-a"])
        let second = try await python.refresh(download: "sensor/1.1.0", to: directory.file("py-download/sensor-1.1.0")).get()
        #expect(second.targets == ["sensor/1.0.0", "sensor/1.1.0"])
        #expect(second.versions["targets"]! > first.versions["targets"]!)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: directory.file("py-download/sensor-1.1.0")))) == image2)

        // 3. Root rotation, then timestamp rotation: clients that only know root v1 walk the chain and still update.
        _ = try run(["firmware", "keys", "rotate", "root"])
        _ = try run(["firmware", "keys", "rotate", "timestamp"])
        let old = try PythonTUFClient(directory: directory.file("py-old"), root: root, base: base, caFile: ca)
        let rotated = try await old.refresh().get()
        #expect(rotated.versions["root"] == 3)
        let stale = try await python.refresh().get()
        #expect(stale.versions["root"] == 3)
        try await updater.refresh()
        #expect(updater.trusted?.root.payload.version == 3)

        // 4. Range requests on a target (single ranges; 206 and 416).
        let path = TUFPath.consistentTargetPath("sensor/1.0.0", hash: info.hashes["sha256"]!)
        let harnessCurl = { (range: [String]) async throws -> (String, [UInt8], String) in
            let body = directory.file("range-\(UUID().uuidString)")
            let headers = directory.file("headers-\(UUID().uuidString)")
            let result = try await ServerHarness.launch(
                "curl", ["-sS", "--max-time", "20", "--cacert", ca, "-D", headers, "-o", body, "-w", "%{http_code}"] + range + [base + "/tuf/targets/" + path])
            return (
                result.stdout, Array((try? Data(contentsOf: URL(fileURLWithPath: body))) ?? Data()),
                (try? String(contentsOfFile: headers, encoding: .utf8)) ?? ""
            )
        }
        let (partialStatus, partial, partialHeaders) = try await harnessCurl(["-r", "100-199"])
        #expect(partialStatus == "206")
        #expect(partial == Array(image[100...199]))
        #expect(partialHeaders.lowercased().contains("content-range: bytes 100-199/\(image.count)"))
        let (suffixStatus, suffix, _) = try await harnessCurl(["-r", "-10"])
        #expect(suffixStatus == "206" && suffix == Array(image.suffix(10)))
        let (openStatus, open, _) = try await harnessCurl(["-r", "299990-"])
        #expect(openStatus == "206" && open == Array(image[299_990...]))
        let (badStatus, _, badHeaders) = try await harnessCurl(["-r", "\(image.count)-"])
        #expect(badStatus == "416")
        #expect(badHeaders.lowercased().contains("content-range: bytes */\(image.count)"))
        let (wholeStatus, whole, wholeHeaders) = try await harnessCurl([])
        #expect(wholeStatus == "200" && whole == image && wholeHeaders.lowercased().contains("accept-ranges: bytes"))
        let (multiStatus, multi, _) = try await harnessCurl(["-r", "0-1,5-6"])
        #expect(multiStatus == "200" && multi == image)
        let missing = try await ServerHarness.launch(
            "curl", ["-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", base + "/tuf/metadata/../warden.sqlite"])
        #expect(missing.stdout == "404")
    }
}

/// Hostile repository states served by the in-process HTTPS server: python-tuf and Warden's updater must both refuse.
@Suite(.serialized) struct TUFRefusalTests {
    static let passphrase = ServerHarness.passphrase

    func setUp() async throws -> (ServerHarness, FirmwareRepository, [UInt8]) {
        let harness = try await ServerHarness.start()
        let repository = FirmwareRepository(home: harness.authority.home, keyIterations: 1000)
        try repository.initialize(passphrase: Self.passphrase, registry: harness.authority.registry, actor: "test", now: Date())
        let image = try harness.directory.write("fw.bin", Array(repeating: 0x5A, count: 70_000))
        _ = try repository.add(
            image: image, name: "fw", version: "1.0.0", hardware: ["b"], passphrase: Self.passphrase, registry: harness.authority.registry,
            actor: "test", now: Date())
        return (harness, repository, try repository.trustedRootBytes())
    }

    func clients(_ harness: ServerHarness, root: [UInt8], name: String) throws -> (PythonTUFClient, TUFUpdater) {
        let python = try PythonTUFClient(directory: harness.directory.file("py-\(name)"), root: root, base: harness.https, caFile: harness.rootPath)
        let ours = harness.directory.file("ours-\(name)")
        try TUFUpdater.provision(trustedRoot: root, metadataDirectory: ours)
        return (python, TUFUpdater(metadataDirectory: ours, fetcher: CurlFetcher(base: harness.https, caFile: harness.rootPath, scratch: harness.directory)))
    }

    func expectRefused(_ python: PythonTUFClient, _ updater: inout TUFUpdater, python exception: String, ours code: WardenError.Code) async throws {
        switch try await python.refresh() {
        case .success: Issue.record("python-tuf accepted the hostile repository")
        case .failure(let error): #expect(error.message.contains(exception), "python-tuf: \(error.message)")
        }
        do {
            try await updater.refresh()
            Issue.record("Warden's updater accepted the hostile repository")
        } catch let error as WardenError {
            #expect(error.code == code, "\(error.message)")
        }
    }

    @Test(.timeLimit(.minutes(3))) func timestampVersionGoingBackwardsIsRefused() async throws {
        let (harness, repository, root) = try await setUp()
        defer { Task { await harness.stop() } }
        let timestampPath = repository.metadataDirectory + "/timestamp.json"
        let old = try Data(contentsOf: URL(fileURLWithPath: timestampPath))
        try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "test", now: Date().addingTimeInterval(86_400))
        var (python, updater) = try clients(harness, root: root, name: "rollback")
        _ = try await python.refresh().get()
        try await updater.refresh()
        try old.write(to: URL(fileURLWithPath: timestampPath))
        try await expectRefused(python, &updater, python: "BadVersionNumberError", ours: .verificationFailed)
        await harness.stop()
    }

    @Test(.timeLimit(.minutes(3))) func expiredTimestampIsRefused() async throws {
        let (harness, repository, root) = try await setUp()
        defer { Task { await harness.stop() } }
        var expiring = repository
        expiring.expiries.timestamp = -3600
        _ = try expiring.republish([.timestamp], root: try repository.currentRoot().payload, passphrase: Self.passphrase, now: Date())
        var (python, updater) = try clients(harness, root: root, name: "expired")
        try await expectRefused(python, &updater, python: "ExpiredMetadataError", ours: .verificationFailed)
        // The refresher repairs it: both clients update again.
        let signed = try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "test", now: Date())
        #expect(signed.map(\.0) == [.timestamp])
        _ = try await python.refresh().get()
        try await updater.refresh()
        await harness.stop()
    }

    @Test(.timeLimit(.minutes(3))) func belowThresholdSignaturesAreRefused() async throws {
        let (harness, repository, root) = try await setUp()
        defer { Task { await harness.stop() } }
        // Snapshot signed by the timestamp key only: a real signature, but by no key of the snapshot role.
        let rootPayload = try repository.currentRoot().payload
        let state = try repository.currentState()
        var forged = SignedMetadata(
            SnapshotMetadata(version: state.snapshot.payload.version + 1, expires: Date().addingTimeInterval(86_400), meta: state.snapshot.payload.meta))
        try forged.sign(with: try repository.loadKeys(role: .timestamp, root: rootPayload, passphrase: Self.passphrase))
        try SecureFile.writeAtomically(forged.fileBytes, to: repository.metadataDirectory + "/\(forged.payload.version).snapshot.json")
        let timestamp = try repository.sign(
            TimestampMetadata(
                version: state.timestamp.payload.version + 1, expires: Date().addingTimeInterval(86_400),
                snapshot: FirmwareRepository.metaInfo(version: forged.payload.version, bytes: forged.fileBytes)),
            role: .timestamp, root: rootPayload, passphrase: Self.passphrase)
        try repository.publish(timestamp, as: "timestamp.json")
        var (python, updater) = try clients(harness, root: root, name: "threshold")
        try await expectRefused(python, &updater, python: "UnsignedMetadataError", ours: .signatureInvalid)
        await harness.stop()
    }

    @Test func refresherResignsOnlyWhatIsHalfExpired() async throws {
        let directory = try TemporaryDirectory()
        let repository = FirmwareRepository(home: WardenHome(path: directory.file("home")), keyIterations: 1000)
        let now = Date()
        try repository.initialize(passphrase: Self.passphrase, registry: nil, actor: "test", now: now)
        // The next re-signing is due at the timestamp's half-life (12 h); nothing earlier has work.
        let due = try repository.nextRefreshDue()
        #expect(abs(due.timeIntervalSince(now) - 12 * 3600) < 5)
        #expect(try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "t", now: due.addingTimeInterval(-60)).isEmpty)
        #expect(try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "t", now: now.addingTimeInterval(3600)).isEmpty)
        let h13 = try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "t", now: now.addingTimeInterval(13 * 3600))
        #expect(h13.map(\.0) == [.timestamp])
        // After that re-signing the next due point is the new timestamp's half-life: 13 h + 12 h.
        #expect(abs(try repository.nextRefreshDue().timeIntervalSince(now) - 25 * 3600) < 5)
        let d4 = try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "t", now: now.addingTimeInterval(4 * 86_400))
        #expect(d4.map(\.0) == [.snapshot, .timestamp])
        let d16 = try repository.refreshIfNeeded(passphrase: Self.passphrase, registry: nil, actor: "t", now: now.addingTimeInterval(16 * 86_400))
        #expect(d16.map(\.0) == [.targets, .snapshot, .timestamp])
        // A client at day 16 verifies the whole re-signed repository.
        let client = directory.file("client")
        try TUFUpdater.provision(trustedRoot: try repository.trustedRootBytes(), metadataDirectory: client)
        var updater = TUFUpdater(metadataDirectory: client, fetcher: RepositoryFetcher(repository: repository))
        try await updater.refresh(now: now.addingTimeInterval(16 * 86_400 + 60))
        #expect(updater.trusted?.timestamp?.payload.version == 4)
    }

    @Test(arguments: [
        ("bytes=0-9", 100, TUFRoutes.RangeRequest.bytes(0, 9)), ("bytes=90-", 100, .bytes(90, 99)), ("bytes=-5", 100, .bytes(95, 99)),
        ("bytes=50-1000", 100, .bytes(50, 99)), ("bytes=100-", 100, .unsatisfiable), ("bytes=-0", 100, .unsatisfiable),
        ("bytes=5-2", 100, .whole), ("bytes=0-1,3-4", 100, .whole), ("items=0-1", 100, .whole), ("bytes=x-1", 100, .whole),
        ("bytes=-500", 100, .bytes(0, 99)),
    ])
    func rangeHeaderParsing(_ header: String, _ length: Int, _ expected: TUFRoutes.RangeRequest) {
        #expect(TUFRoutes.parseRange(header, length: length) == expected)
    }
}

/// Reads the authority's repository files directly, the way the HTTPS routes resolve them.
struct RepositoryFetcher: TUFFetcher {
    let repository: FirmwareRepository

    func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
        let file = kind == .metadata ? repository.metadataFile(path) : repository.targetFile(path)
        guard let file else { return nil }
        return try SecureFile.read(file, limit: maxLength, what: "repository file")
    }
}
