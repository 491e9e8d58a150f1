import Benchmark
import EdgeCore
import Foundation

/// Edge core benchmarks: samples through a full pipeline, durable appends per commit policy, and
/// LZ batch compression. Figures and the same-run SQLite reference are in docs/PERFORMANCE.md.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 50
    )

    let fuel = #"""
        {"version":1,"reorder_window":0.5,"sensors":[{"name":"fuel","silent_after":600,
         "filters":[{"type":"hampel","window":7},{"type":"kalman","q":0.0005,"r":3}],
         "rules":[{"name":"low-fuel","type":"hysteresis","direction":"below","on":15,"off":20,"min_dwell":60},
                  {"name":"stale","type":"stale","after":1800}],
         "compression":[{"type":"swinging_door","deviation":0.5}]}]}
        """#
    // swiftlint:disable:next force_try
    let config = try! PipelineConfig.parse(Data(fuel.utf8), source: "benchmark")
    var noise = [Double](repeating: 0, count: 4096)
    var seed: UInt64 = 0x9E37_79B9
    for i in noise.indices {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        noise[i] = Double(seed >> 11) / Double(1 << 53) * 6 - 3
    }
    let samples = noise

    // One iteration = 1000 samples (scalingFactor .kilo): throughput reads as samples/s × 1000.
    Benchmark("Pipeline fuel chain (hampel, kalman, 2 rules, SDT, reorder)") { benchmark in
        var p = Pipeline(config: config)
        var out: [EdgeRecord] = []
        out.reserveCapacity(4096)
        var i = 0
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 {
                p.push(sensor: 0, ts: 1_700_000_000 + Double(i) * 0.01, value: 40 - Double(i) * 1e-5 + samples[i & 4095], into: &out)
                i += 1
            }
            out.removeAll(keepingCapacity: true)
        }
        blackHole(out)
    }

    for policy in [CommitPolicy.perMessage, .group(milliseconds: 10), .noSync] {
        let scale: BenchmarkScalingFactor = policy == .perMessage ? .one : .kilo
        Benchmark(
            "Queue append 100 B, commit \(policy)",
            configuration: .init(metrics: [.wallClock, .throughput, .syscalls], scalingFactor: scale, maxDuration: .seconds(5))
        ) { benchmark in
            let dir = NSTemporaryDirectory() + "edge-bench-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            do {
                let q = try DurableQueue(
                    directory: dir, options: .init(device: "bench", commit: policy, maxBytes: 1 << 30, segmentBytes: 8 << 20))
                let body = [UInt8](repeating: 0x61, count: 100)
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations { try q.append(body, lane: .history) }
                try q.commit()
                benchmark.stopMeasurement()
            } catch {
                benchmark.error("queue failed: \(error)")
            }
        }
    }

    Benchmark("LZ compress 64 KiB of telemetry JSON", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        var text = ""
        var k = 0
        while text.utf8.count < 65_536 {
            text += "{\"kind\":\"value\",\"ts\":\(1_700_000_000 + k),\"sensor\":\"fuel\",\"value\":\(40 - Double(k) / 100)}\n"
            k += 1
        }
        let input = Array(text.utf8.prefix(65_536))
        for _ in benchmark.scaledIterations { blackHole(LZCompressor.compress(input)) }
    }
}
