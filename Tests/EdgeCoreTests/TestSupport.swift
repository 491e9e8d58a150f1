import EdgeCore
import Foundation

/// A deterministic generator (SplitMix64) so every synthetic trace is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double {
        Double.random(in: lo..<hi, using: &self)
    }
    mutating func gaussian() -> Double {
        let u1 = max(uniform(0, 1), 1e-300), u2 = uniform(0, 1)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

enum Repo {
    /// The repository root, found from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func pipeline(_ name: String) throws -> PipelineConfig {
        try PipelineConfig.load(path: path("examples/pipelines/\(name)"))
    }

    static func fixture(_ name: String) throws -> String {
        if let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil) {
            return try String(contentsOf: url, encoding: .utf8)
        }
        return try String(contentsOfFile: path("Tests/EdgeCoreTests/Fixtures/\(name)"), encoding: .utf8)
    }
}

/// Runs samples of one or more sensors through a pipeline and returns every record.
func runPipeline(_ config: PipelineConfig, _ samples: [(sensor: Int, sample: Sample)]) -> [EdgeRecord] {
    var p = Pipeline(config: config)
    var out: [EdgeRecord] = []
    for (i, s) in samples { p.push(sensor: i, s, into: &out) }
    p.finish(into: &out)
    return out
}

func scalarSamples(_ values: [TimedValue], sensor: Int = 0) -> [(sensor: Int, sample: Sample)] {
    values.map { (sensor, Sample(ts: $0.ts, reading: .scalar($0.value))) }
}

extension [EdgeRecord] {
    var alerts: [Alert] {
        compactMap { if case .alert(_, let a) = $0 { return a } else { return nil } }
    }
    var gaps: [Gap] {
        compactMap { if case .gap(_, let g) = $0 { return g } else { return nil } }
    }
    var values: [TimedValue] {
        compactMap { if case .value(_, let v) = $0 { return v } else { return nil } }
    }
    var positions: [(ts: Double, GeoPosition)] {
        compactMap { if case .position(_, let ts, let p) = $0 { return (ts, p) } else { return nil } }
    }
    var stats: [SensorStats] {
        compactMap { if case .stats(_, let s) = $0 { return s } else { return nil } }
    }
}

/// Runs a python reference script from tests/python with JSON on stdin; returns its stdout as JSON.
func runPython(_ script: String, input: Any) throws -> Any {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", Repo.path("tests/python/\(script)")]
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe
    p.standardOutput = outPipe
    p.standardError = errPipe
    try p.run()
    let data = try JSONSerialization.data(withJSONObject: input)
    let writer = Thread {
        inPipe.fileHandleForWriting.write(data)
        try? inPipe.fileHandleForWriting.close()
    }
    writer.start()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile()
    let err = errPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw EdgeError(.io, "\(script) failed: \(String(decoding: err, as: UTF8.self))")
    }
    return try JSONSerialization.jsonObject(with: out)
}
