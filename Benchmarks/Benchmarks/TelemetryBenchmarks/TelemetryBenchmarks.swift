import Benchmark
import EdgeCore
import Foundation
import WardenCore
import WardenStore

/// Telemetry benchmarks: the batch wire format (encode with LZ, decode) over real-looking pipeline records, and the
/// authority's ingest into SQLite (one transaction per 256-record batch, INSERT OR IGNORE dedup). The same-run raw
/// SQLite reference is scripts/bench-telemetry-sqlite.py; figures in docs/PERFORMANCE.md ("Telemetry").
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        warmupIterations: 1,
        scalingFactor: .one,
        maxDuration: .seconds(5),
        maxIterations: 2000
    )

    // 256 records as `warden-agent run --simulate` makes them: a noisy sine through a one-sensor pipeline, encoded
    // by EdgeCore's JSON Lines encoder, with queue ids of one device and boot.
    let encoder = JSONLEncoder(sensorNames: ["temp"])
    var seed: UInt64 = 0x9E37_79B9
    func batch(from first: UInt64) -> [TelemetryBatch.Record] {
        (0..<256).map { i in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let noise = Double(seed >> 11) / Double(1 << 53) * 2 - 1
            let ts = 1_764_000_000 + Double(first + UInt64(i)) * 0.05
            var text = ""
            encoder.encode(.value(sensor: 0, TimedValue(ts: ts, value: 50 + 20 * sin(ts / 60 * 2 * .pi) + noise)), into: &text)
            return TelemetryBatch.Record(id: MessageID(device: "gw-0001", bootEpoch: 7, sequence: first + UInt64(i)), payload: Array(text.dropLast().utf8))
        }
    }
    let records = batch(from: 1)
    // swiftlint:disable:next force_try
    let wire = try! TelemetryBatch.encode(records)
    // swiftlint:disable:next force_try
    let raw = (try! TelemetryBatch.decode(wire)).rawBytes
    let perRecordJSON = records.map { 13 + $0.id.description.utf8.count + $0.payload.count + 13 }.reduce(0, +)
    print("telemetry batch of 256 records: \(wire.count) bytes on the wire, \(raw) raw framed, \(perRecordJSON) as 256 per-record JSON messages "
        + "(ratio raw/wire \(String(format: "%.2f", Double(raw) / Double(wire.count))), per-record JSON/wire \(String(format: "%.2f", Double(perRecordJSON) / Double(wire.count))))")

    // One iteration = one 256-record batch; throughput reads as batches/s (× 256 = records/s).
    Benchmark("Telemetry batch encode+LZ (256 records)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try TelemetryBatch.encode(records)) }
    }
    Benchmark("Telemetry batch decode (256 records, LZ)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try TelemetryBatch.decode(wire)) }
    }

    // The authority's ingest: decode + one registry transaction per batch (INSERT OR IGNORE, counters, pruning), into
    // one registry that grows across the samples (like the python reference). One sample = one batch. With
    // redeliveries, every batch re-sends the previous batch's second half (128 duplicates) plus 128 new records.
    for duplicateShare in [0, 50] {
        let dir = NSTemporaryDirectory() + "telemetry-bench-\(UUID().uuidString)"
        // swiftlint:disable force_try
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let registry = try! Registry(path: dir + "/registry.sqlite")
        let enrollment = Enrollment(
            deviceID: try! DeviceID("gw-0001"), groups: [], serial: "01", der: [0x30, 0x00], notBefore: Date(),
            notAfter: Date().addingTimeInterval(86_400), publicKeyFingerprint: "k", sha256: "s")
        _ = try! registry.record([enrollment], actor: "bench", now: Date())
        // swiftlint:enable force_try
        let cursor = Cursor()
        Benchmark(
            "Telemetry ingest into the registry (256-record batches, \(duplicateShare)% redelivered)",
            configuration: .init(metrics: [.wallClock, .throughput, .syscalls], scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 400)
        ) { benchmark in
            if duplicateShare > 0, cursor.next > 1 { cursor.next -= 128 }
            let wire = try TelemetryBatch.encode(batch(from: cursor.next))
            cursor.next += 256
            let now = Date()
            benchmark.startMeasurement()
            let decoded = try TelemetryBatch.decode(wire)
            blackHole(try registry.recordTelemetry(
                "gw-0001", records: decoded.records.map { ($0.id.bootEpoch, $0.id.sequence, $0.payload) }, at: now))
            benchmark.stopMeasurement()
        } teardown: {
            if let summary = try? registry.telemetrySummary(of: "gw-0001") {
                print("ingest (\(duplicateShare)% redelivered): \(summary.stored) stored, \(summary.duplicates) duplicates dropped")
            }
        }
    }
}

/// The next sequence number of a benchmark's batches.
final class Cursor: @unchecked Sendable {
    var next: UInt64 = 1
}
