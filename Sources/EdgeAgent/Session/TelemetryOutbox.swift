import EdgeCore
import Foundation
import WardenCore

/// The agent's store-and-forward outbox: EdgeCore's `DurableQueue` under `DIR/queue`, fed by the pipeline and drained
/// to `d/<id>/up/telemetry`.
public enum TelemetryOutbox {
    /// The queue directory inside the agent's state directory.
    public static func directory(state: String) -> String { state + "/queue" }

    /// Opens (or creates) the outbox of `device` under `state`.
    /// - Throws: `WardenError.storage` if the queue cannot be opened.
    public static func open(state: String, device: DeviceID) throws -> DurableQueue {
        do {
            return try DurableQueue(directory: directory(state: state), options: .init(device: device.rawValue))
        } catch let error as EdgeError {
            throw WardenError.storage("outbox '\(directory(state: state))': \(error)")
        }
    }

    /// Runs `csv` through `pipelineJSON` (as `warden-agent replay` does) and appends every output record (one JSON
    /// object) to `queue`: alerts to the alert lane, everything else to history. Commits before returning.
    /// - Returns: the number of records appended.
    /// - Throws: `WardenError.badInput` for a bad pipeline or CSV (the whole CSV is checked first, so nothing is
    ///   appended then), `.storage` for queue failures.
    @discardableResult
    public static func enqueueReplay(pipelineJSON: String, csv: String, into queue: DurableQueue) throws -> Int {
        let config: PipelineConfig
        let reader: CSVSampleReader
        do {
            config = try PipelineConfig.parse(Data(pipelineJSON.utf8), source: "the config's pipeline")
            reader = try CSVSampleReader(path: csv)
        } catch let error as EdgeError {
            throw WardenError.badInput("\(error)")
        }
        // Validate the whole CSV against the pipeline before anything is queued, so a bad file queues nothing.
        do {
            try Replay.run(config: config, reader: reader, source: csv) { _ in }
        } catch let error as EdgeError {
            throw WardenError.badInput("\(error)")
        }
        var count = 0
        do {
            try Replay.run(config: config, reader: reader, source: csv) { text in
                for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                    let lane: QueueLane = line.contains(#""kind":"alert""#) ? .alert : .history
                    _ = try queue.append(Array(line.utf8), lane: lane)
                    count += 1
                }
            }
            try queue.commit()
        } catch let error as EdgeError {
            throw WardenError.storage("outbox: \(error)")
        }
        return count
    }

    /// The telemetry payload of one queued record: `{"id":"<device>/<boot epoch>/<sequence>","record":<record>}`.
    /// The id is the queue's idempotent message id, so a receiver can drop redeliveries.
    public static func payload(_ record: StoredRecord) -> [UInt8] {
        Array(#"{"id":"\#(record.id)","record":"#.utf8) + record.payload + Array("}".utf8)
    }
}
