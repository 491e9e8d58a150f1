#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import EdgeCore
import Foundation

extension WardenAgent {
    /// Hidden: release-mode throughput figures for docs/PERFORMANCE.md ("Edge core").
    ///
    /// The ordo-one benchmark suite (Benchmarks/Benchmarks/EdgeCoreBenchmarks) measures the same
    /// operations; this command exists so figures can be taken on a device without the benchmark
    /// package, and so tests/python/edge_bench_reference.py can run SQLite next to it in one run.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench", abstract: "Measure pipeline and queue throughput (internal).", shouldDisplay: false)

        @Option(help: "Pipeline document to measure (default: a fuel-like chain).") var pipeline: String?
        @Option(help: "Samples pushed through the pipeline.") var samples: Int = 5_000_000
        @Option(help: "Directory for queue files (on the disk under test).") var dir: String = ".build-edge/bench"
        @Option(help: "Payload bytes per queue append.") var payload: Int = 100
        @Option(help: "Appends for the per-message policy (the others do 100× more).") var appends: Int = 2000
        @Flag(help: "Print one JSON object instead of text.") var json = false

        static func now() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }

        /// CPU time of this thread: rates per CPU-second are "per core" even on a shared machine.
        static func cpuNow() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }

        static let defaultPipeline = #"""
            {"version":1,"reorder_window":0.5,"sensors":[{"name":"fuel","silent_after":600,
             "filters":[{"type":"hampel","window":7},{"type":"kalman","q":0.0005,"r":3}],
             "rules":[{"name":"low-fuel","type":"hysteresis","direction":"below","on":15,"off":20,"min_dwell":60},
                      {"name":"stale","type":"stale","after":1800}],
             "compression":[{"type":"swinging_door","deviation":0.5}]}]}
            """#

        func pipelineRate(_ config: PipelineConfig, latency: Bool = true) -> (rate: Double, out: Int) {
            var p = Pipeline(config: config)
            p.measuresLatency = latency
            var out: [EdgeRecord] = []
            out.reserveCapacity(8192)
            var noise = [Double](repeating: 0, count: 4096)
            var seed: UInt64 = 0x9E37_79B9
            for i in noise.indices {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                noise[i] = Double(seed >> 11) / Double(1 << 53) * 6 - 3
            }
            let sensors = config.sensors.count
            var emitted = 0
            let start = Self.cpuNow()
            for i in 0..<samples {
                let ts = 1_700_000_000 + Double(i) * 0.01
                p.push(sensor: i % sensors, ts: ts, value: 40 - Double(i) * 1e-5 + noise[i & 4095], into: &out)
                if out.count > 4096 {
                    emitted += out.count
                    out.removeAll(keepingCapacity: true)
                }
            }
            p.finish(into: &out)
            let elapsed = Self.cpuNow() - start
            return (Double(samples) / elapsed, emitted + out.count)
        }

        func queueRate(_ policy: CommitPolicy, count: Int) throws -> (rate: Double, amplification: Double, syncs: Int) {
            let path = dir + "/queue-\(policy)"
            try? FileManager.default.removeItem(atPath: path)
            let q = try DurableQueue(
                directory: path, options: .init(device: "bench", commit: policy, maxBytes: 1 << 30, segmentBytes: 8 << 20))
            let body = [UInt8](repeating: 0x61, count: payload)
            let start = Self.now()
            try body.withUnsafeBytes { raw in
                for _ in 0..<count { try q.append(raw, lane: .history) }
            }
            try q.commit()
            let elapsed = Self.now() - start
            let s = q.stats
            try? FileManager.default.removeItem(atPath: path)
            return (Double(count) / elapsed, s.writeAmplification, s.syncs)
        }

        func run() throws {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let config = try pipeline.map { try PipelineConfig.load(path: $0) }
                    ?? PipelineConfig.parse(Data(Self.defaultPipeline.utf8), source: "built-in")
                var lean = config
                lean.reorderWindow = 0
                let full = pipelineRate(config)
                let noReorder = pipelineRate(lean)
                let uninstrumented = pipelineRate(config, latency: false)
                var results: [(String, Double, Double, Int)] = []
                for (policy, n) in [(CommitPolicy.perMessage, appends), (.group(milliseconds: 10), appends * 100), (.noSync, appends * 100)] {
                    let r = try queueRate(policy, count: n)
                    results.append(("\(policy)", r.rate, r.amplification, n))
                }
                if json {
                    var parts = [
                        "\"pipeline_samples_per_s\":\(Int(full.rate))", "\"pipeline_no_reorder_samples_per_s\":\(Int(noReorder.rate))",
                        "\"pipeline_no_latency_clock_samples_per_s\":\(Int(uninstrumented.rate))",
                        "\"samples\":\(samples)", "\"records_out\":\(full.out)", "\"payload_bytes\":\(payload)",
                    ]
                    for (name, rate, amp, n) in results {
                        parts.append("\"queue_\(name)\":{\"appends\":\(n),\"appends_per_s\":\(Int(rate)),\"bytes_written_per_byte\":\(JSONLEncoder.number((amp * 1000).rounded() / 1000))}")
                    }
                    FileOutput.standardOutput.write("{" + parts.joined(separator: ",") + "}\n")
                } else {
                    var text = "pipeline (\(samples) samples, per CPU-second of one core): \(Int(full.rate)) samples/s; without reorder window: \(Int(noReorder.rate)) samples/s; without the latency clock: \(Int(uninstrumented.rate)) samples/s\n"
                    for (name, rate, amp, n) in results {
                        text += "queue \(name): \(Int(rate)) appends/s over \(n) appends of \(payload) B; \(amp) bytes written per payload byte\n"
                    }
                    FileOutput.standardOutput.write(text)
                }
            } catch let e as EdgeError {
                throw report(e)
            }
        }
    }
}
