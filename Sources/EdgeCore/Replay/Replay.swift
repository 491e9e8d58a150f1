/// Runs a pipeline offline over recorded input (`warden-agent replay`).
public enum Replay {
    /// Replays every row of `reader` through a pipeline built from `config`, passing JSON Lines
    /// text to `write` in chunks. Returns the final per-sensor statistics.
    ///
    /// Rows must name sensors of the pipeline with readings of the right kind, and `@boot` rows may
    /// not go back in time; any violation throws an error naming the line.
    @discardableResult
    public static func run(
        config: PipelineConfig, reader: CSVSampleReader, source: String, write: (String) throws -> Void
    ) throws -> [SensorStats] {
        var reader = reader
        var pipeline = Pipeline(config: config)
        let encoder = JSONLEncoder(sensorNames: config.sensors.map(\.name))
        var index: [String: Int] = [:]
        for (i, s) in config.sensors.enumerated() { index[s.name] = i }
        var records: [EdgeRecord] = []
        var text = ""
        text.reserveCapacity(1 << 16)
        func flushRecords(force: Bool) throws {
            for r in records { encoder.encode(r, into: &text) }
            records.removeAll(keepingCapacity: true)
            if force || text.utf8.count >= 1 << 16 {
                if !text.isEmpty { try write(text) }
                text.removeAll(keepingCapacity: true)
            }
        }
        while let row = try reader.next() {
            switch row.content {
            case .boot:
                guard !(row.ts < pipeline.now) else {
                    throw EdgeError(.invalidInput, "\(source):\(row.line): '@boot' at \(row.ts) is earlier than data already seen (\(pipeline.now))")
                }
                pipeline.agentBooted(at: row.ts, into: &records)
            case .missing(let sensor):
                guard index[sensor] != nil else {
                    throw EdgeError(.invalidInput, "\(source):\(row.line): sensor '\(sensor)' is not in the pipeline")
                }
            case .sample(let sensor, let reading):
                guard let i = index[sensor] else {
                    throw EdgeError(.invalidInput, "\(source):\(row.line): sensor '\(sensor)' is not in the pipeline")
                }
                let wantsPosition = config.sensors[i].kind == .position
                if case .position = reading, !wantsPosition {
                    throw EdgeError(.invalidInput, "\(source):\(row.line): sensor '\(sensor)' is scalar but the row has lat/lon")
                }
                if case .scalar = reading, wantsPosition {
                    throw EdgeError(.invalidInput, "\(source):\(row.line): sensor '\(sensor)' is a position sensor but the row has a value")
                }
                pipeline.push(sensor: i, Sample(ts: row.ts, reading: reading), into: &records)
            }
            if records.count >= 256 { try flushRecords(force: false) }
        }
        pipeline.finish(into: &records)
        try flushRecords(force: true)
        return config.sensors.indices.map { pipeline.stats(sensor: $0) }
    }
}
