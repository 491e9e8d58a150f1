import EdgeCore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Finds the `warden-agent` binary built next to the test bundle.
enum AgentBinary {
    static func find() -> String? {
        if let env = ProcessInfo.processInfo.environment["WARDEN_AGENT_BIN"] { return env }
        var candidates: [URL] = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle.main.bundleURL.deletingLastPathComponent(),
            Bundle.main.bundleURL,
        ]
        for b in Bundle.allBundles { candidates.append(b.bundleURL.deletingLastPathComponent()) }
        for dir in candidates {
            var d = dir
            for _ in 0..<4 {
                let p = d.appendingPathComponent("warden-agent").path
                if FileManager.default.isExecutableFile(atPath: p) { return p }
                d = d.deletingLastPathComponent()
            }
        }
        return nil
    }
}

/// The payload the writer appends for `seq` (mirrors `warden-agent queue-writer`).
func harnessPayload(_ seq: UInt64) -> [UInt8] {
    var p = Array("seq=\(seq);".utf8)
    let filler = Int(seq &* 7919 % 160)
    for i in 0..<filler { p.append(UInt8(truncatingIfNeeded: 0x41 &+ (Int(seq) &+ i) % 26)) }
    return p
}

/// Runs the writer, kills it with SIGKILL after `killAfter` seconds (if still running), and
/// returns the sequence numbers it printed as acknowledged plus its exit status.
func runWriter(_ binary: String, _ args: [String], killAfter: Double?) throws -> (acked: [UInt64], status: Int32, signaled: Bool, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = ["queue-writer"] + args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    if let killAfter {
        usleep(useconds_t(killAfter * 1e6))
        // Never signal pid 0 (our own process group) or a writer that already exited (its pid may
        // have been reused: pid_max is 32768 on this machine and builds recycle pids quickly).
        let pid = p.processIdentifier
        if pid > 0 && p.isRunning { kill(pid, SIGKILL) }
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    // Only complete lines count: a line cut by the kill was never fully reported.
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    lines.removeLast()
    return (lines.compactMap { UInt64($0) }, p.terminationStatus, p.terminationReason == .uncaughtSignal,
            String(decoding: errData, as: UTF8.self))
}

@Suite(.serialized) struct CrashHarnessTests {
    /// 3 policies × 70 cycles = 210 random `kill -9` during appends.
    @Test("kill -9 at random moments: acknowledged appends come back exactly once, in order",
          arguments: ["per-message", "group:5", "none"])
    func randomKills(policy: String) throws {
        let binary = try #require(AgentBinary.find(), "warden-agent binary not found next to the tests; build it first")
        var dir = ""
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(seed: 0xC0FFEE ^ UInt64(policy.utf8.count))
        var acked = Set<UInt64>()
        var kills = 0, cleanExits = 0, recoveredTotal = 0, truncatedTotal = 0, ackedTotal = 0
        var bootOf: [UInt64: UInt32] = [:]
        var cyclesOnDir = 0
        for cycle in 0..<70 {
            // A fresh queue every 10 kills bounds the data re-read after each kill, so the harness
            // stays fast on machines where the writer gets far before it is killed.
            if cycle % 10 == 0 {
                try? FileManager.default.removeItem(atPath: dir)
                dir = temporaryDirectory("crash-\(policy)")
                ackedTotal += acked.count
                acked = []
                bootOf = [:]
                cyclesOnDir = 0
            }
            cyclesOnDir += 1
            // Counts large enough that the writer is almost always killed mid-stream.
            let count = policy == "per-message" ? Int(rng.uniform(2000, 20000)) : Int(rng.uniform(50_000, 500_000))
            let delay = rng.uniform(0.005, 0.12)
            let r = try runWriter(binary, ["--dir", dir, "--policy", policy, "--count", "\(count)",
                                           "--segment-bytes", "16384"], killAfter: delay)
            if r.signaled { kills += 1 } else {
                cleanExits += 1
                #expect(r.status == 0, "writer failed: \(r.stderr)")
            }
            acked.formUnion(r.acked)
            // Reopen as the next boot would: recovery truncates torn tails.
            let q = try DurableQueue(directory: dir, options: .init(device: "harness", commit: .perMessage))
            truncatedTotal += q.stats.truncatedBytes
            var all: [StoredRecord] = []
            for lane in QueueLane.allCases {
                let records = try q.readAll(lane: lane)
                // Each lane is in strictly increasing sequence order: no duplicates, no reordering.
                #expect(zip(records, records.dropFirst()).allSatisfy { $0.id.sequence < $1.id.sequence },
                        "cycle \(cycle): lane \(lane) out of order")
                all += records
            }
            if cycle % 10 == 9 { recoveredTotal += all.count }
            let seqs = Set(all.map(\.id.sequence))
            #expect(seqs.count == all.count, "cycle \(cycle): duplicate sequence numbers")
            let missing = acked.subtracting(seqs)
            #expect(missing.isEmpty, "cycle \(cycle) (\(policy)): \(missing.count) acknowledged appends lost, e.g. \(missing.sorted().prefix(5))")
            for r in all {
                #expect(r.payload == harnessPayload(r.id.sequence), "cycle \(cycle): payload of \(r.id) is wrong")
                // An id is never reused: a sequence number keeps the boot epoch it was written in.
                let boot = bootOf[r.id.sequence, default: r.id.bootEpoch]
                #expect(boot == r.id.bootEpoch, "sequence \(r.id.sequence) reissued in boot \(r.id.bootEpoch)")
                bootOf[r.id.sequence] = boot
            }
            if policy == "per-message" {
                // Per-message loses nothing: at most the one append in flight at the kill is
                // stored without having been reported.
                #expect(seqs.subtracting(acked).count <= cyclesOnDir)
            }
            if !missing.isEmpty { break }
        }
        ackedTotal += acked.count
        print("crash harness \(policy): \(kills) kills, \(cleanExits) clean exits, \(ackedTotal) acknowledged, \(recoveredTotal) recovered, \(truncatedTotal) torn bytes truncated")
        #expect(kills >= 60, "only \(kills) kills")
        #expect(recoveredTotal >= ackedTotal)
        #expect(ackedTotal >= 200, "too few acknowledged appends to mean anything: \(ackedTotal)")
    }

    @Test("kill -9 while the disk budget sheds history: acknowledged alerts survive, ids never repeat")
    func killsWhileShedding() throws {
        let binary = try #require(AgentBinary.find())
        let dir = temporaryDirectory("crash-shed")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(seed: 77)
        var ackedAlerts = Set<UInt64>()
        var consumed = Set<UInt64>()
        var bootOf: [UInt64: UInt32] = [:]
        var kills = 0
        var shed = false
        for cycle in 0..<30 {
            let r = try runWriter(binary, ["--dir", dir, "--policy", "group:5", "--count", "\(Int(rng.uniform(50_000, 500_000)))",
                                           "--max-bytes", "262144", "--segment-bytes", "16384", "--alert-every", "200"],
                                  killAfter: rng.uniform(0.01, 0.12))
            if r.signaled { kills += 1 } else { #expect(r.status == 0, "writer failed: \(r.stderr)") }
            ackedAlerts.formUnion(r.acked.filter { $0 % 200 == 0 })
            let q = try DurableQueue(directory: dir, options: .init(device: "harness", commit: .perMessage, maxBytes: 262_144))
            #expect(q.stats.bytesUsed <= 262_144)
            var seqs = Set<UInt64>()
            for lane in QueueLane.allCases {
                let records = try q.readAll(lane: lane)
                #expect(zip(records, records.dropFirst()).allSatisfy { $0.id.sequence < $1.id.sequence })
                for rec in records {
                    #expect(rec.payload == harnessPayload(rec.id.sequence))
                    let boot = bootOf[rec.id.sequence, default: rec.id.bootEpoch]
                    #expect(boot == rec.id.bootEpoch, "cycle \(cycle): sequence \(rec.id.sequence) reissued")
                    bootOf[rec.id.sequence] = boot
                    seqs.insert(rec.id.sequence)
                }
            }
            if let first = try q.readAll(lane: .history).first, first.id.sequence > 1 { shed = true }
            let lost = ackedAlerts.subtracting(consumed).subtracting(seqs)
            #expect(lost.isEmpty, "cycle \(cycle): acknowledged alerts lost: \(lost.sorted().prefix(5))")
            // Deliver the alerts (as the uplink would), so alerts alone never fill the budget.
            let alerts = try q.readAll(lane: .alert)
            try q.acknowledge(alerts)
            consumed.formUnion(alerts.map(\.id.sequence))
        }
        #expect(kills >= 20)
        #expect(shed, "the budget never forced shedding")
        #expect(ackedAlerts.count >= 10)
    }

    @Test("the kernel refusing writes (RLIMIT_FSIZE, EFBIG) gives a one-line error and exit 1, not a crash")
    func kernelRefusesWrites() throws {
        let binary = try #require(AgentBinary.find())
        let dir = temporaryDirectory("fsize")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runWriter(binary, ["--dir", dir, "--policy", "per-message", "--count", "100000",
                                       "--segment-bytes", "1048576", "--fsize-limit", "20000"], killAfter: nil)
        #expect(!r.signaled)
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("warden-agent: error: ") && r.stderr.contains("File too large"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        // Everything acknowledged before the failure is intact.
        let q = try DurableQueue(directory: dir, options: .init(device: "harness"))
        var seqs: [UInt64] = []
        for lane in QueueLane.allCases { seqs += try q.readAll(lane: lane).map(\.id.sequence) }
        #expect(Set(r.acked).isSubset(of: Set(seqs)))
        #expect(!r.acked.isEmpty)
    }

    @Test("a queue directory under a regular file gives a clear error and exit 1")
    func unusableDirectory() throws {
        let binary = try #require(AgentBinary.find())
        let dir = temporaryDirectory("ro")
        _ = FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        let r = try runWriter(binary, ["--dir", dir + "/file/q", "--count", "10"], killAfter: nil)
        #expect(!r.signaled && r.status == 1)
        #expect(r.stderr.contains("Not a directory"))
    }
}
