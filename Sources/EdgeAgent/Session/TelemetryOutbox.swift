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

    /// The MQTT payload for the next records of the outbox: a ``TelemetryBatch`` of as many of `records` (a prefix,
    /// in queue order: alerts first) as fit its limits, each with its idempotent queue id, so the authority can drop
    /// redeliveries. Returns the batch and the records it carries (empty if `records` is).
    /// - Throws: `WardenError.storage` if the first record cannot be framed at all (it exceeds the batch limit).
    public static func batch(_ records: [StoredRecord]) throws -> (payload: [UInt8], records: [StoredRecord]) {
        guard !records.isEmpty else { return ([], []) }
        let n = TelemetryBatch.prefixCount(records)
        guard n > 0 else { throw WardenError.storage("outbox record \(records[0].id) is too large for a telemetry batch") }
        let taken = Array(records.prefix(n))
        do {
            return (try TelemetryBatch.encode(taken.map { TelemetryBatch.Record(id: $0.id, payload: $0.payload) }), taken)
        } catch let error as EdgeError {
            throw WardenError.storage("outbox: \(error)")
        }
    }

    /// The outbox shared between the task that fills it (`run --simulate`) and the telemetry feature that drains it:
    /// `DurableQueue` is not thread-safe, so every use goes through ``withQueue(_:)``.
    public final class Shared: @unchecked Sendable {
        // @unchecked: `queue` is only touched under `lock`.
        private let queue: DurableQueue
        private let lock = NSLock()

        /// Wraps `queue`, which from now on is only used through this object.
        public init(_ queue: DurableQueue) { self.queue = queue }

        /// Runs `body` with the queue, exclusively.
        public func withQueue<T>(_ body: (DurableQueue) throws -> T) rethrows -> T {
            lock.lock()
            defer { lock.unlock() }
            return try body(queue)
        }
    }
}
