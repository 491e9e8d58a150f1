import Foundation
import Testing
import WardenAuthority
import WardenCore
import WardenStore
import WardenTestSupport

/// `warden rollout …` through the real executable, and the wave/abort logic through the authority it drives.
@Suite(.serialized) struct RolloutCLITests {
    /// A fleet with 8 devices in group `lab`, one outside it, and `fw@1.0.0` published.
    static func fleet() throws -> Fleet {
        let fleet = try Fleet()
        for number in 0..<8 { _ = try fleet.enroll("lab-\(number)", group: "lab") }
        _ = try fleet.enroll("other-0", group: "elsewhere")
        let keys = try fleet.run("firmware", "keys", "init")
        guard keys.status == 0 else { throw TestSupportError("firmware keys init: \(keys.stderr)") }
        let image = fleet.dir.file("fw.bin")
        try Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: image))
        let added = try fleet.run("firmware", "add", image, "--name", "fw", "--version", "1.0.0", "--hardware", "board-a")
        guard added.status == 0 else { throw TestSupportError("firmware add: \(added.stderr)") }
        return fleet
    }

    static func status(_ fleet: Fleet, _ id: Int64) throws -> RolloutStatus {
        let result = try fleet.run("rollout", "status", String(id), "--json")
        guard result.status == 0 else { throw TestSupportError("rollout status: \(result.stderr)") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(RolloutStatus.self, from: Data(result.stdout.utf8))
    }

    static func authority(_ fleet: Fleet) throws -> Authority {
        try Authority.open(home: WardenHome(path: fleet.home), passphrase: Array("correct horse battery staple".utf8), actor: "test")
    }

    @Test func createAssignsTheFirstWaveAndRefusesBadInput() throws {
        let fleet = try Self.fleet()
        let created = try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "lab", "--waves", "25,50,100", "--abort-failure-rate", "30%", "--json")
        #expect(created.status == 0, "\(created.stderr)")
        let status = try Self.status(fleet, 1)
        #expect(status.rollout.state == .running)
        #expect(status.rollout.waves == [25, 50, 100])
        #expect(status.rollout.abortFailureRate == 30)
        #expect(status.counts["pending"] == 2)       // 25 % of 8
        #expect(status.counts["scheduled"] == 6)
        #expect(status.counts.values.reduce(0, +) == 8)  // other-0 is not in the group
        #expect(try fleet.run("audit", "log").stdout.contains("rollout.create"))

        // Refusals: unknown target, unknown group, malformed target, waves and rate.
        #expect(try fleet.run("rollout", "create", "--target", "fw@9.9.9", "--group", "lab").status == 2)
        #expect(try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "nobody").status == 2)
        #expect(try fleet.run("rollout", "create", "--target", "fw", "--group", "lab").status == 2)
        for waves in ["10,50", "50,10,100", "0,100", "abc", "10,,100", "100,100"] {
            #expect(try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "lab", "--waves", waves).status == 2, "waves \(waves)")
        }
        for rate in ["-1%", "101%", "five", "nan"] {
            #expect(try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "lab", "--abort-failure-rate=\(rate)").status == 2, "rate \(rate)")
        }
        #expect(try fleet.run("rollout", "status", "42").status == 2)
    }

    @Test func pauseResumeAbortAreStateChecked() throws {
        let fleet = try Self.fleet()
        #expect(try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "lab").status == 0)
        #expect(try fleet.run("rollout", "resume", "1").status == 1)   // not paused
        #expect(try fleet.run("rollout", "pause", "1").status == 0)
        #expect(try Self.status(fleet, 1).rollout.state == .paused)
        #expect(try fleet.run("rollout", "pause", "1").status == 1)
        #expect(try fleet.run("rollout", "resume", "1").status == 0)
        #expect(try fleet.run("rollout", "abort", "1", "--reason", "bad batch").status == 0)
        let aborted = try Self.status(fleet, 1)
        #expect(aborted.rollout.state == .aborted)
        #expect(aborted.rollout.reason == "bad batch")
        #expect(aborted.counts["cancelled"] == 8)
        #expect(try fleet.run("rollout", "abort", "1").status == 1)
        let audit = try fleet.run("audit", "log").stdout
        for action in ["rollout.pause", "rollout.resume", "rollout.abort"] { #expect(audit.contains(action)) }
    }

    @Test func wavesAdvanceOnSuccessAndTheRolloutCompletes() throws {
        let fleet = try Self.fleet()
        #expect(try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "lab", "--waves", "25,50,100").status == 0)
        let authority = try Self.authority(fleet)
        // Only assigned devices may report; a device in a later wave has no assignment yet.
        #expect(throws: WardenError.notFound("")) { try authority.recordRolloutReport(device: "lab-7", state: .succeeded, reason: nil, now: Date()) }
        #expect(throws: WardenError.badInput("")) { try authority.recordRolloutReport(device: "lab-0", state: .cancelled, reason: nil, now: Date()) }
        try authority.recordRolloutReport(device: "lab-0", state: .downloading, reason: nil, now: Date())
        #expect(try Self.status(fleet, 1).counts["downloading"] == 1)
        try authority.recordRolloutReport(device: "lab-0", state: .succeeded, reason: nil, now: Date())
        #expect(try Self.status(fleet, 1).rollout.currentWave == 0)  // lab-1 still pending
        try authority.recordRolloutReport(device: "lab-1", state: .succeeded, reason: nil, now: Date())
        var status = try Self.status(fleet, 1)
        #expect(status.rollout.currentWave == 1)
        #expect(status.counts["pending"] == 2 && status.counts["scheduled"] == 4)
        for device in ["lab-2", "lab-3"] { try authority.recordRolloutReport(device: device, state: .succeeded, reason: nil, now: Date()) }
        for device in (4..<8).map({ "lab-\($0)" }) { try authority.recordRolloutReport(device: device, state: .succeeded, reason: nil, now: Date()) }
        status = try Self.status(fleet, 1)
        #expect(status.rollout.state == .completed)
        #expect(status.counts["succeeded"] == 8)
        let audit = try fleet.run("audit", "log").stdout
        #expect(audit.contains("rollout.wave") && audit.contains("rollout.complete") && audit.contains("rollout.report"))
        // The device's assignment is over: further reports are refused.
        #expect(throws: WardenError.notFound("")) { try authority.recordRolloutReport(device: "lab-0", state: .failed, reason: "x", now: Date()) }
    }

    @Test func aFailureRateAboveTheThresholdAbortsAutomatically() throws {
        let fleet = try Self.fleet()
        #expect(try fleet.run("rollout", "create", "--target", "fw@1.0.0", "--group", "lab", "--waves", "50,100", "--abort-failure-rate", "30%").status == 0)
        let authority = try Self.authority(fleet)
        for device in ["lab-0", "lab-1", "lab-2"] { try authority.recordRolloutReport(device: device, state: .succeeded, reason: nil, now: Date()) }
        // 1 of 4 final = 25 %: below 30 %, still running.
        try authority.recordRolloutReport(device: "lab-3", state: .failed, reason: "hash mismatch", now: Date())
        #expect(try Self.status(fleet, 1).rollout.state == .running)
        #expect(try Self.status(fleet, 1).rollout.currentWave == 1)
        // 2 of 5 = 40 %: abort; the rest of the fleet is cancelled.
        try authority.recordRolloutReport(device: "lab-4", state: .failed, reason: "boot loop", now: Date())
        let status = try Self.status(fleet, 1)
        #expect(status.rollout.state == .aborted)
        #expect(status.rollout.reason?.contains("failure rate 40.0%") == true)
        #expect(status.failureReasons == ["hash mismatch": 1, "boot loop": 1])
        #expect(status.counts["cancelled"] == 3)
        #expect(try fleet.run("audit", "log").stdout.contains("automatic"))
    }
}
