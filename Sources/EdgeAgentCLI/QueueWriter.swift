#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import EdgeCore

extension WardenAgent {
    /// Hidden: the writer process of the crash harness (Tests/EdgeCoreTests/CrashHarnessTests.swift).
    ///
    /// Appends deterministic payloads and prints each sequence number on stdout only after it is
    /// acknowledged under the chosen commit policy, so the harness knows what must survive a
    /// `kill -9` at any moment.
    struct QueueWriter: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "queue-writer", abstract: "Crash-harness writer (internal).", shouldDisplay: false)

        @Option var dir: String
        @Option var policy: String = "group"
        @Option var count: Int = 1000
        @Option(name: .customLong("max-bytes")) var maxBytes: Int = 64 << 20
        @Option(name: .customLong("segment-bytes")) var segmentBytes: Int = 64 << 10
        @Option(name: .customLong("alert-every"), help: "Every Nth sequence number goes to the alert lane.")
        var alertEvery: UInt64 = 10
        @Option(name: .customLong("fsize-limit"), help: "RLIMIT_FSIZE in bytes, to make the kernel refuse writes.")
        var fsizeLimit: Int?

        /// The payload of sequence number `seq`: the harness recomputes it to check every byte.
        static func payload(_ seq: UInt64) -> [UInt8] {
            var p = Array("seq=\(seq);".utf8)
            let filler = Int(seq &* 7919 % 160)
            for i in 0..<filler { p.append(UInt8(truncatingIfNeeded: 0x41 &+ (Int(seq) &+ i) % 26)) }
            return p
        }

        /// Lane of sequence number `seq`.
        static func lane(_ seq: UInt64, alertEvery: UInt64) -> QueueLane {
            seq % alertEvery == 0 ? .alert : seq % 10 == 5 ? .state : .history
        }

        func run() throws {
            guard let commit = CommitPolicy(policy) else {
                throw report(EdgeError(.invalidInput, "--policy must be per-message, group, group:N or none, got '\(policy)'"))
            }
            if let limit = fsizeLimit {
                signal(SIGXFSZ, SIG_IGN)
                var rl = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
                #if os(Linux)
                setrlimit(Int32(RLIMIT_FSIZE.rawValue), &rl)
                #else
                setrlimit(RLIMIT_FSIZE, &rl)
                #endif
            }
            do {
                let q = try DurableQueue(
                    directory: dir,
                    options: .init(device: "harness", commit: commit, maxBytes: maxBytes, segmentBytes: segmentBytes))
                var printed = q.acknowledgedSequence
                func printAcked() {
                    guard q.acknowledgedSequence > printed else { return }
                    var text = ""
                    for s in (printed + 1)...q.acknowledgedSequence where q.isAcknowledged(s) { text += "\(s)\n" }
                    printed = q.acknowledgedSequence
                    FileOutput.standardOutput.write(text)
                }
                for _ in 0..<count {
                    let seq = q.nextSequence
                    try q.append(Self.payload(seq), lane: Self.lane(seq, alertEvery: max(1, alertEvery)))
                    printAcked()
                }
                try q.commit()
                printAcked()
            } catch let e as EdgeError {
                throw report(e)
            }
        }
    }
}
