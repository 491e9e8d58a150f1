import EdgeAgent
import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A firmware image and its manifest, written under a temporary directory.
struct SlotFixture {
    let image: String
    let manifest: SlotManifest

    /// `length` bytes that differ per `release`, written to `DIR/name`.
    static func make(
        _ directory: TemporaryDirectory, name: String = "gw-fw", version: String, counter: Int64, length: Int = 64 * 1024,
        file: String? = nil
    ) throws -> SlotFixture {
        var bytes = [UInt8](repeating: 0, count: length)
        var state = UInt64(counter) &* 0x9E37_79B9_7F4A_7C15 | 1
        for index in stride(from: 0, to: length, by: 4096) {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes[index] = UInt8(truncatingIfNeeded: state >> 33)
        }
        let path = try directory.write(file ?? "\(name)-\(version).bin", bytes)
        let manifest = SlotManifest(
            name: name, version: version, releaseCounter: counter, sha256: Digest.hex(Digest.sha256(bytes)), length: length,
            hardware: ["rpi4", "cm4"], rollout: 12)
        return SlotFixture(image: path, manifest: manifest)
    }
}

/// Flips one byte of the file at `path` (at `offset`).
func flipByte(_ path: String, at offset: UInt64 = 1000) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    defer { try? handle.close() }
    try handle.seek(toOffset: offset)
    let byte = try #require(try handle.read(upToCount: 1)).first!
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: Data([byte ^ 0x01]))
}

/// A `#!/bin/sh` script, mode 0755.
func script(_ directory: TemporaryDirectory, _ name: String, _ body: String) throws -> String {
    let path = try directory.write(name, "#!/bin/sh\n" + body + "\n")
    chmod(path, 0o755)
    return path
}

/// Every file under `path` with its bytes, for "nothing was written" checks.
func snapshot(_ path: String) -> [String: Data] {
    var files: [String: Data] = [:]
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return files }
    while let name = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDirectory)
        files[name] = isDirectory.boolValue ? Data() : FileManager.default.contents(atPath: path + "/" + name)
    }
    return files
}

@Suite struct SlotStoreTests {
    /// A store in `dir/state` with release 1.0.0 (counter 1) installed and committed in slot a: where most tests start.
    func committedStore(_ dir: TemporaryDirectory) throws -> SlotStore {
        let store = SlotStore(stateDirectory: dir.file("state"))
        let v1 = try SlotFixture.make(dir, version: "1.0.0", counter: 1)
        try store.install(image: v1.image, manifest: v1.manifest)
        try store.commit()
        return store
    }

    @Test("install → trial → healthy check (sees its slot) → commit → floor raised; the next release goes to the other slot")
    func installHealthyCommit() async throws {
        let dir = try TemporaryDirectory()
        let store = SlotStore(stateDirectory: dir.file("state"))
        #expect(try store.recover() == .unchanged(active: nil))
        let v1 = try SlotFixture.make(dir, version: "1.0.0", counter: 1)
        #expect(try store.install(image: v1.image, manifest: v1.manifest) == .a)
        var status = try store.status()
        #expect(status.active == nil && status.trial == .a)
        #expect(status.a?.sha256 == v1.manifest.sha256 && status.a?.installedAt != nil && status.b == nil)
        #expect(status.floors.isEmpty)
        #expect(try store.recover() == .trialPending(.a))

        let check = try script(dir, "ok.sh", """
            echo "slot=$WARDEN_SLOT version=$WARDEN_SLOT_VERSION"
            test "$WARDEN_SLOT_DIR/image" = "$WARDEN_SLOT_IMAGE" && test -f "$WARDEN_SLOT_IMAGE" || exit 9
            """)
        let result = await store.runHealthCheck(HealthCheck(command: [check], timeoutSeconds: 10))
        #expect(result.healthy && result.exitStatus == 0 && !result.timedOut && result.slot == .a)
        #expect(result.output == "slot=a version=1.0.0\n")
        try store.commit()
        status = try store.status()
        #expect(status.active == .a && status.trial == nil)
        #expect(status.floors == ["gw-fw": SlotFloor(version: "1.0.0", releaseCounter: 1)])
        #expect(try store.verify(.a).version == "1.0.0")

        let v2 = try SlotFixture.make(dir, version: "1.1.0", counter: 2)
        let activeBefore = try Data(contentsOf: URL(fileURLWithPath: store.imagePath(of: .a)))
        #expect(try store.install(image: v2.image, manifest: v2.manifest) == .b)
        #expect(try Data(contentsOf: URL(fileURLWithPath: store.imagePath(of: .a))) == activeBefore)
        let second = await store.runHealthCheck(HealthCheck(command: [check], timeoutSeconds: 10))
        #expect(second.healthy && second.slot == .b && second.output == "slot=b version=1.1.0\n")
        try store.commit()
        status = try store.status()
        #expect(status.active == .b && status.trial == nil && status.activeManifest?.version == "1.1.0")
        #expect(status.a?.version == "1.0.0")
        #expect(status.floors["gw-fw"] == SlotFloor(version: "1.1.0", releaseCounter: 2))
        #expect(try store.recover() == .unchanged(active: .b))
        // boot.json is the documented shape.
        let boot = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: store.bootPath))) as? [String: Any]
        #expect(boot?["active"] as? String == "b" && boot?["trial"] is NSNull)
        #expect(throws: WardenError.notFound("")) { try store.commit() }
        #expect(throws: WardenError.notFound("")) { try store.rollback(reason: "nothing") }
    }

    @Test("a failing health check (exit 1) → rollback: the old active slot stays, the failed image is unbootable")
    func failingHealthCheckRollsBack() async throws {
        let dir = try TemporaryDirectory()
        let store = try committedStore(dir)
        let v2 = try SlotFixture.make(dir, version: "2.0.0", counter: 2)
        try store.install(image: v2.image, manifest: v2.manifest)
        // 100 kB of output: only the first 4 KiB are kept.
        let failing = try script(dir, "fail.sh", """
            head -c 100000 /dev/zero | tr '\\000' x
            echo
            echo "sensor bus not found on $WARDEN_SLOT"
            exit 1
            """)
        let result = await store.runHealthCheck(HealthCheck(command: [failing], timeoutSeconds: 10))
        #expect(!result.healthy && result.exitStatus == 1 && !result.timedOut && result.slot == .b)
        #expect(result.output.utf8.count == HealthResult.maximumOutput)
        #expect(result.reason.contains("status 1"))
        try store.rollback(reason: result.reason)
        let status = try store.status()
        #expect(status.active == .a && status.trial == nil && status.b == nil)
        #expect(status.floors["gw-fw"] == SlotFloor(version: "1.0.0", releaseCounter: 1))
        #expect(status.lastRollback?.slot == .b && status.lastRollback?.manifest?.version == "2.0.0")
        #expect(status.lastRollback?.reason == result.reason)
        #expect(!FileManager.default.fileExists(atPath: store.imagePath(of: .b)))
        #expect(try store.verify(.a) == status.a)
        // Even with the active image destroyed, the rolled-back release is never switched to.
        try flipByte(store.imagePath(of: .a))
        guard case .unbootable = try store.recover() else { Issue.record("expected unbootable"); return }
    }

    @Test("a health check that outlives its timeout is SIGKILLed (with its process group) → rollback")
    func timingOutHealthCheck() async throws {
        let dir = try TemporaryDirectory()
        let store = try committedStore(dir)
        let v2 = try SlotFixture.make(dir, version: "1.0.1", counter: 2)
        try store.install(image: v2.image, manifest: v2.manifest)
        let pidFile = dir.file("pid")
        let hang = try script(dir, "hang.sh", "echo $$ > \(pidFile)\necho starting\nsleep 30\n")
        let started = Date()
        let result = await store.runHealthCheck(HealthCheck(command: [hang], timeoutSeconds: 0.5))
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(!result.healthy && result.timedOut && result.exitStatus == nil)
        #expect(result.output == "starting\n" && result.reason.contains("timed out"))
        let pid = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, 0) != 0 && errno == ESRCH, "the timed-out check is still running")
        try store.rollback(reason: result.reason)
        #expect(try store.status().active == .a)
        #expect(try store.recover() == .unchanged(active: .a))
    }

    @Test("invalid health checks are unhealthy results, not crashes")
    func invalidHealthChecks() async throws {
        let dir = try TemporaryDirectory()
        let store = SlotStore(stateDirectory: dir.file("state"))
        let none = await store.runHealthCheck(HealthCheck(command: ["/bin/true"], timeoutSeconds: 1))
        #expect(!none.healthy && none.reason.contains("no slot"))
        let v1 = try SlotFixture.make(dir, version: "1.0.0", counter: 1)
        try store.install(image: v1.image, manifest: v1.manifest)
        for check in [
            HealthCheck(command: ["true"], timeoutSeconds: 1), HealthCheck(command: [], timeoutSeconds: 1),
            HealthCheck(command: ["/bin/true"], timeoutSeconds: 0), HealthCheck(command: [dir.file("missing")], timeoutSeconds: 1),
        ] {
            let result = await store.runHealthCheck(check)
            #expect(!result.healthy, "\(check)")
        }
        #expect(await store.runHealthCheck(HealthCheck(command: ["/bin/true"], timeoutSeconds: 5)).healthy)
    }

    @Test("a tampered image (one byte flipped) or a wrong length is refused and nothing is written", arguments: ["flip", "longer", "shorter", "manifest-length"])
    func tamperedImageRefused(kind: String) throws {
        let dir = try TemporaryDirectory()
        let store = try committedStore(dir)
        var v2 = try SlotFixture.make(dir, version: "1.1.0", counter: 2)
        switch kind {
        case "flip": try flipByte(v2.image, at: 4097)
        case "longer":
            let handle = try #require(FileHandle(forWritingAtPath: v2.image))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data([0]))
            try handle.close()
        case "shorter": #expect(truncate(v2.image, off_t(v2.manifest.length - 1)) == 0)
        default: v2 = SlotFixture(image: v2.image, manifest: { var m = v2.manifest; m.length += 1; return m }())
        }
        let before = snapshot(store.directory)
        #expect(throws: WardenError.policy("")) { try store.install(image: v2.image, manifest: v2.manifest) }
        #expect(snapshot(store.directory) == before)
        #expect(try store.recover() == .unchanged(active: .a))
        // A missing image is bad input, also with nothing written.
        #expect(throws: WardenError.notFound("")) { try store.install(image: dir.file("nope.bin"), manifest: v2.manifest) }
        #expect(snapshot(store.directory) == before)
    }

    @Test("a downgrade (lower release counter or lower version) is refused naming the floor; equal is allowed")
    func downgradeRefused() throws {
        let dir = try TemporaryDirectory()
        let store = SlotStore(stateDirectory: dir.file("state"))
        let v2 = try SlotFixture.make(dir, version: "2.10.0", counter: 5)
        try store.install(image: v2.image, manifest: v2.manifest)
        try store.commit()
        for (version, counter) in [("3.0.0", Int64(4)), ("2.9.9", Int64(6)), ("1.0", Int64(1))] {
            let old = try SlotFixture.make(dir, version: version, counter: counter)
            let before = snapshot(store.directory)
            do {
                try store.install(image: old.image, manifest: old.manifest)
                Issue.record("\(version)/\(counter) was installed")
            } catch let error as WardenError {
                #expect(error.code == .policyViolation)
                #expect(error.message.contains("gw-fw@2.10.0 (release counter 5)"), "\(error.message)")
            }
            #expect(snapshot(store.directory) == before)
            #expect(throws: WardenError.policy("")) {
                try store.checkFloor(name: "gw-fw", version: version, releaseCounter: counter)
            }
        }
        // Re-installing the committed release, and other names, are allowed.
        try store.checkFloor(name: "gw-fw", version: "2.10.0", releaseCounter: 5)
        try store.checkFloor(name: "other-fw", version: "0.1", releaseCounter: 0)
        #expect(try store.install(image: v2.image, manifest: v2.manifest) == .b)
        try store.commit()
        #expect(try store.status().floors["gw-fw"] == SlotFloor(version: "2.10.0", releaseCounter: 5))
    }

    @Test("version order: numeric by component, missing = 0, lexical otherwise")
    func versionOrder() throws {
        #expect(FirmwareVersion.compare("1.10", "1.9") > 0)
        #expect(FirmwareVersion.compare("1.2", "1.2.0") == 0)
        #expect(FirmwareVersion.compare("01.2", "1.2") == 0)
        #expect(FirmwareVersion.compare("1.2.3", "1.2.4") < 0)
        #expect(FirmwareVersion.compare("99999999999999999999999", "1") > 0)
        #expect(FirmwareVersion.compare("1.0-beta", "1.0-alpha") > 0)
        for bad in ["", "1..2", ".1", "1.", "1 2", "1/2", String(repeating: "1", count: 65)] {
            #expect(throws: WardenError.badInput("")) { try FirmwareVersion.validate(bad) }
        }
    }

    @Test("recover() after the active image is corrupted switches to the verified other slot")
    func recoverSwitchesToOtherSlot() throws {
        let dir = try TemporaryDirectory()
        let store = try committedStore(dir)
        let v2 = try SlotFixture.make(dir, version: "1.1.0", counter: 2)
        try store.install(image: v2.image, manifest: v2.manifest)
        try store.commit()
        try flipByte(store.imagePath(of: .b))
        guard case .switched(from: .b, to: .a, let reason) = try store.recover() else { Issue.record("no switch"); return }
        #expect(reason.contains("SHA-256"))
        let status = try store.status()
        #expect(status.active == .a && status.activeManifest?.version == "1.0.0")
        // The floor is not lowered: 1.1.0 stays the minimum for new installs.
        #expect(status.floors["gw-fw"]?.releaseCounter == 2)
        #expect(try store.recover() == .unchanged(active: .a))
        // A missing image is switched away from too.
        try store.install(image: v2.image, manifest: v2.manifest)
        try store.commit()
        unlink(store.imagePath(of: .b))
        guard case .switched(from: .b, to: .a, _) = try store.recover() else { Issue.record("no switch"); return }
    }

    @Test("recover(): a verified pending trial is reported, a damaged one discarded, leftovers removed")
    func recoverTrials() throws {
        let dir = try TemporaryDirectory()
        let store = try committedStore(dir)
        let v2 = try SlotFixture.make(dir, version: "1.1.0", counter: 2)
        try store.install(image: v2.image, manifest: v2.manifest)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: store.directory(of: .b) + "/image.tmp"))
        try Data("{".utf8).write(to: URL(fileURLWithPath: store.directory + "/.boot.json.123.tmp"))
        #expect(try store.recover() == .trialPending(.b))
        #expect(!FileManager.default.fileExists(atPath: store.directory(of: .b) + "/image.tmp"))
        #expect(!FileManager.default.fileExists(atPath: store.directory + "/.boot.json.123.tmp"))
        try flipByte(store.imagePath(of: .b))
        guard case .trialDiscarded(.b, _) = try store.recover() else { Issue.record("not discarded"); return }
        let status = try store.status()
        #expect(status.active == .a && status.trial == nil && status.b == nil)
        // A commit attempt on a damaged trial changes nothing.
        try store.install(image: v2.image, manifest: v2.manifest)
        try flipByte(store.imagePath(of: .b))
        #expect(throws: WardenError.storage("")) { try store.commit() }
        #expect(try store.status().active == .a)
    }

    @Test("manifests: every field is validated, 64 KiB at most", arguments: [
        #"{"name":"Bad Name","version":"1","release_counter":1,"sha256":"HEX","length":1,"hardware":["x"]}"#,
        #"{"name":"fw","version":"1..0","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":["x"]}"#,
        #"{"name":"fw","version":"1","release_counter":-1,"sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":["x"]}"#,
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "A", count: 64))","length":1,"hardware":["x"]}"#,
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":0,"hardware":["x"]}"#,
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":[]}"#,
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":["x y"]}"#,
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":["x","x"]}"#,
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":1}"#,
        #"{"name":"fw","version":"1","release_counter":"1","sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":["x"]}"#,
        "[]", "not json",
        #"{"name":"fw","version":"1","release_counter":1,"sha256":"\#(String(repeating: "a", count: 64))","length":1,"hardware":["x"],"pad":"\#(String(repeating: " ", count: 65536))"}"#,
    ])
    func manifestValidation(json: String) throws {
        #expect(throws: WardenError.badInput("")) { try SlotManifest.decode(Array(json.utf8), source: "m.json") }
    }

    @Test("manifest JSON round-trips with snake_case keys")
    func manifestRoundTrip() throws {
        let manifest = SlotManifest(
            name: "gw-fw", version: "1.2.3", releaseCounter: 7, sha256: String(repeating: "ab", count: 32), length: 10,
            hardware: ["rpi4"], rollout: nil, installedAt: Date(timeIntervalSince1970: 1_795_000_000))
        let bytes = try manifest.encoded()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(Set(object.keys) == ["name", "version", "release_counter", "sha256", "length", "hardware", "installed_at"])
        #expect(object["installed_at"] as? Int == 1_795_000_000)
        #expect(try SlotManifest.decode(bytes, source: "m") == manifest)
    }

    @Test("warden-agent slots: text and JSON status; install refusals are one line with exit 1/2")
    func cli() throws {
        let dir = try TemporaryDirectory()
        let state = dir.file("state")
        let empty = try Agent.run(["slots", "--state", state])
        #expect(empty.status == 0 && empty.stdout.contains("active: none"))
        let v1 = try SlotFixture.make(dir, version: "1.0.0", counter: 1)
        let manifestPath = try dir.write("m1.json", try v1.manifest.encoded())
        let installed = try Agent.run(["slots", "install", "--state", state, "--image", v1.image, "--manifest", manifestPath, "--commit"])
        #expect(installed.status == 0, "\(installed.stderr)")
        #expect(installed.stdout.contains("into slot a, committed"))
        let text = try Agent.run(["slots", "--state", state])
        #expect(text.stdout.contains("active: a") && text.stdout.contains("slot a (active): gw-fw@1.0.0 release 1"))
        #expect(text.stdout.contains("slot b: empty") && text.stdout.contains("floor gw-fw: 1.0.0 release 1"))
        let json = try Agent.run(["slots", "--state", state, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["active"] as? String == "a" && object["trial"] is NSNull)
        let slots = try #require(object["slots"] as? [String: Any])
        #expect((slots["a"] as? [String: Any])?["release_counter"] as? Int == 1 && slots["b"] is NSNull)
        #expect(((object["floors"] as? [String: Any])?["gw-fw"] as? [String: Any])?["version"] as? String == "1.0.0")
        // The install subcommand is hidden from help.
        let help = try Agent.run(["slots", "--help"]).stdout
        #expect(help.contains("\n  show") && !help.contains("\n  install"))

        try flipByte(v1.image)
        let tampered = try Agent.run(["slots", "install", "--state", state, "--image", v1.image, "--manifest", manifestPath])
        #expect(tampered.status == 1 && tampered.oneLineError && tampered.stderr.contains("SHA-256"))
        let badManifest = try dir.write("bad.json", "{\"name\":\"Bad\"}")
        let bad = try Agent.run(["slots", "install", "--state", state, "--image", v1.image, "--manifest", badManifest])
        #expect(bad.status == 2 && bad.oneLineError)
        let corrupt = try dir.write("state/slots/boot.json", "garbage")
        _ = corrupt
        let storage = try Agent.run(["slots", "--state", state])
        #expect(storage.status == 3 && storage.oneLineError && storage.stderr.contains("corrupted"))
    }
}
