import EdgeAgent
import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A 32 MiB image for release `counter`, written to `path`; returns its manifest.
private func writeLargeImage(_ path: String, counter: Int64) throws -> SlotManifest {
    let length = 32 * 1024 * 1024
    var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: counter), count: length)
    var state = UInt64(counter) &* 0x9E37_79B9_7F4A_7C15 | 1
    for index in stride(from: 0, to: length, by: 512) {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        bytes[index] = UInt8(truncatingIfNeeded: state >> 33)
    }
    unlink(path)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return SlotManifest(
        name: "gw-fw", version: "1.0.\(counter)", releaseCounter: counter, sha256: Digest.hex(Digest.sha256(bytes)), length: length,
        hardware: ["rpi4"])
}

@Suite(.serialized) struct SlotCrashTests {
    @Test("kill -9 of 'warden-agent slots install --commit' (32 MiB) at random moments: recover() always finds a verified active release, and the next install completes")
    func randomKillsDuringInstall() throws {
        let started = Date()
        let dir = try TemporaryDirectory()
        let state = dir.file("state")
        let store = SlotStore(stateDirectory: state)
        let imagePath = dir.file("image.bin")
        let manifestPath = dir.file("manifest.json")
        func prepare(_ counter: Int64) throws -> SlotManifest {
            let manifest = try writeLargeImage(imagePath, counter: counter)
            unlink(manifestPath)
            try Data(try manifest.encoded()).write(to: URL(fileURLWithPath: manifestPath))
            return manifest
        }
        func install() throws -> SpawnedProcess {
            try SpawnedProcess(
                Agent.executable, ["slots", "install", "--state", state, "--image", imagePath, "--manifest", manifestPath, "--commit"],
                output: dir.file("install.log"))
        }

        // Release 1, uninterrupted; its duration bounds the kill moments.
        _ = try prepare(1)
        let first = Date()
        #expect(try install().wait() == 0, "\((try? String(contentsOfFile: dir.file("install.log"), encoding: .utf8)) ?? "")")
        // Two timed installs (they re-verify the active slot first, as every later one does); the faster bounds the
        // kill moments, so almost every install is killed somewhere between its start and its commit.
        var installTime = Double.infinity
        for counter in [Int64(2), 3] {
            _ = try prepare(counter)
            let timed = Date()
            #expect(try install().wait() == 0)
            installTime = min(installTime, Date().timeIntervalSince(timed))
        }
        _ = first
        #expect(try store.verify(try #require(try store.status().active)) == (try store.status().activeManifest))
        var committed = try #require(try store.status().activeManifest)

        var seed: UInt64 = 0x5107_5EED
        func uniform(_ upper: Double) -> Double {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(seed >> 11) / Double(1 << 53) * upper
        }
        var kills = 0
        var outcomes: [String: Int] = [:]
        for iteration in 0..<25 {
            let next = try prepare(Int64(iteration) + 4)
            let child = try install()
            usleep(useconds_t(uniform(installTime * 0.95) * 1e6))
            if child.isRunning {
                kill(child.pid, SIGKILL)
                kills += 1
            }
            let status = child.wait()
            // A clean exit is 0; a killed one is 128 + 9.
            #expect(status == 0 || status == 137, "iteration \(iteration): exit \(status)")

            // Where the kill landed, as the files show it.
            if FileManager.default.fileExists(atPath: store.directory(of: .a) + "/image.tmp")
                || FileManager.default.fileExists(atPath: store.directory(of: .b) + "/image.tmp")
            {
                outcomes["killed while copying", default: 0] += 1
            }
            // The next agent start.
            let outcome = try store.recover()
            switch outcome {
            case .unchanged:
                let newActive = try store.status().activeManifest?.releaseCounter == next.releaseCounter
                outcomes[newActive ? "unchanged, new release active" : "unchanged, previous release active", default: 0] += 1
            case .trialPending:
                // Killed between the install and its commit: the caller rolls back (or re-runs the health check).
                outcomes["trialPending", default: 0] += 1
                try store.rollback(reason: "interrupted install")
            case .trialDiscarded: outcomes["trialDiscarded", default: 0] += 1
            case .switched, .unbootable: Issue.record("iteration \(iteration): \(outcome)")
            }
            let after = try store.status()
            let active = try #require(after.active, "iteration \(iteration): no active slot")
            let verified = try store.verify(active)
            #expect(verified == committed || (verified.releaseCounter == next.releaseCounter && verified.sha256 == next.sha256),
                    "iteration \(iteration): active is \(verified.version)")
            #expect(after.trial == nil)
            #expect(after.floors["gw-fw"]?.releaseCounter == verified.releaseCounter, "iteration \(iteration): floor not at the active release")
            for slot in Slot.allCases {
                #expect(!FileManager.default.fileExists(atPath: store.directory(of: slot) + "/image.tmp"))
            }
            committed = verified
        }
        // A later install, uninterrupted, completes and becomes active.
        let last = try prepare(100)
        #expect(try install().wait() == 0)
        #expect(try store.recover() == .unchanged(active: try store.status().active))
        #expect(try store.verify(try #require(try store.status().active)).sha256 == last.sha256)
        print("slot crash test: install \(String(format: "%.2f", installTime)) s, \(kills) kills, outcomes \(outcomes)")
        #expect(kills >= 15, "only \(kills) of 25 installs were killed")
        #expect(Date().timeIntervalSince(started) < 60)
    }
}
