import EdgeCore
import Foundation
import WardenCore

/// A built-in synthetic sensor for `warden-agent run --simulate HZ`: feeds the config's first scalar sensor, `hz`
/// times a second, through the config's pipeline (EdgeCore's `Pipeline`, exactly as a real sensor would) and appends
/// every output record to the outbox (alerts to the alert lane), whether or not the link is up, so a backlog builds
/// during an outage.
///
/// The signal is `50 + 20·sin(2πt/60)` plus Gaussian noise (σ = 1) and, on about one sample in 200, a spike of +40:
/// enough for deadband/swinging-door filters to compress and for a threshold rule to fire now and then.
public struct TelemetrySimulator: Sendable {
    /// Samples per second.
    public let hz: Double
    private let config: PipelineConfig
    private let sensor: Int

    /// Prepares a simulator for the pipeline `pipelineJSON` at `hz` samples per second (0 < hz ≤ 1000).
    /// - Throws: `WardenError.badInput` for a bad pipeline, a pipeline without a scalar sensor, or a bad rate.
    public init(pipelineJSON: String, hz: Double) throws {
        guard hz.isFinite, hz > 0, hz <= 1000 else { throw WardenError.badInput("--simulate needs a rate in (0, 1000] Hz, not \(hz)") }
        do {
            config = try PipelineConfig.parse(Data(pipelineJSON.utf8), source: "the config's pipeline")
        } catch let error as EdgeError {
            throw WardenError.badInput("\(error)")
        }
        guard let index = config.sensors.firstIndex(where: { $0.kind == .scalar }) else {
            throw WardenError.badInput("--simulate needs a scalar sensor in the config's pipeline")
        }
        sensor = index
        self.hz = hz
    }

    /// The simulated reading at `t` seconds (without noise and spikes).
    public static func baseline(_ t: Double) -> Double { 50 + 20 * sin(2 * Double.pi * t / 60) }

    /// Feeds the pipeline until cancelled; returns when the task is cancelled, after logging how many records it
    /// queued and the last one's id (`simulate: stopped after queueing N record(s), the last one <id>`).
    /// - Throws: `WardenError.storage` when the outbox refuses an append or a commit.
    public func run(into outbox: TelemetryOutbox.Shared, report: @Sendable (String) -> Void) async throws {
        var pipeline = Pipeline(config: config)
        let encoder = JSONLEncoder(sensorNames: config.sensors.map(\.name))
        var generator = SystemRandomNumberGenerator()
        var records: [EdgeRecord] = []
        var text = ""
        let clock = ContinuousClock()
        let start = clock.now
        let period = Duration.nanoseconds(Int64(1e9 / hz))
        var tick: Int64 = 0
        var queued = 0
        var last: MessageID?
        report("simulate: feeding '\(config.sensors[sensor].name)' at \(hz) Hz through the pipeline into the outbox")
        while !Task.isCancelled {
            let ts = Date().timeIntervalSince1970
            // Box-Muller for the noise.
            let u1 = Double.random(in: Double.ulpOfOne..<1, using: &generator)
            let u2 = Double.random(in: 0..<1, using: &generator)
            var value = Self.baseline(ts) + (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            if Int.random(in: 0..<200, using: &generator) == 0 { value += 40 }
            records.removeAll(keepingCapacity: true)
            pipeline.push(sensor: sensor, ts: ts, value: value, into: &records)
            if !records.isEmpty {
                text.removeAll(keepingCapacity: true)
                for record in records { encoder.encode(record, into: &text) }
                do {
                    try outbox.withQueue { queue in
                        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                            let lane: QueueLane = line.contains(#""kind":"alert""#) ? .alert : .history
                            last = try queue.append(Array(line.utf8), lane: lane)
                            queued += 1
                        }
                        try queue.commit()
                    }
                } catch let error as EdgeError {
                    throw WardenError.storage("outbox: \(error)")
                }
            }
            tick += 1
            if tick % Int64(max(1, hz * 10)) == 0 { report("simulate: \(queued) record(s) queued") }
            do {
                try await clock.sleep(until: start + period * tick)
            } catch {
                break
            }
        }
        report("simulate: stopped after queueing \(queued) record(s)\(last.map { ", the last one \($0)" } ?? "")")
    }
}
