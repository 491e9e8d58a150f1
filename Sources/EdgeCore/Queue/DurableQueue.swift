#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A durable store-and-forward queue with priority lanes, a disk budget and idempotent ids.
///
/// Layout of the directory: `meta` (device, boot epoch, sequence floor), `lock`, and one
/// sub-directory per lane with numbered segment files and a `cursor` file. See docs/EDGE.md,
/// "Durability contract", for exactly what an acknowledged append survives.
///
/// A queue is owned by one task (it is not `Sendable`); the agent's runtime calls
/// ``commitIfDue(nowNanos:)`` from its timer so group commits happen within the window.
public final class DurableQueue {
    /// Queue settings.
    public struct Options: Sendable {
        /// The device id, part of every message id.
        public var device: String
        /// When appends are acknowledged.
        public var commit: CommitPolicy
        /// Largest number of bytes the segment files may use.
        public var maxBytes: Int
        /// Target size of one segment file (clamped to an eighth of ``maxBytes``, at least 4 KiB).
        public var segmentBytes: Int
        /// Test hook for I/O failures.
        public var faults: WriteFaultInjector?

        /// Creates options.
        public init(
            device: String, commit: CommitPolicy = .default, maxBytes: Int = 64 << 20, segmentBytes: Int = 4 << 20,
            faults: WriteFaultInjector? = nil
        ) {
            self.device = device
            self.commit = commit
            self.maxBytes = maxBytes
            self.segmentBytes = segmentBytes
            self.faults = faults
        }
    }

    /// Settings in force.
    public let options: Options
    /// The queue directory.
    public let directory: String
    /// This boot's epoch (incremented and persisted at every open).
    public let bootEpoch: UInt32
    private var logs: [SegmentLog]
    private var cursors: [QueuePosition]
    private var cursorFiles: [PosixFile]
    private var cursorDirty = [false, false, false]
    private let lock: PosixFile
    private var nextSeq: UInt64
    private var sequenceFloor: UInt64
    /// Highest sequence number covered by a successful commit. Every append up to it is
    /// acknowledged, except those whose commit failed (the error was thrown to the caller): see
    /// ``isAcknowledged(_:)``.
    public private(set) var acknowledgedSequence: UInt64
    /// Sequence ranges whose commit failed; they are never acknowledged (the most recent 64).
    public private(set) var failedSequences: [ClosedRange<UInt64>] = []
    private var pendingSince: UInt64?
    private var lastAppendedSeq: UInt64
    private let segmentBytes: Int
    /// Counters.
    public private(set) var stats = QueueStats()

    /// The sequence number the next append will get.
    public var nextSequence: UInt64 { nextSeq }

    /// Opens (creating if needed) a queue, recovering from any crash: torn tails are truncated,
    /// the boot epoch is incremented and the sequence continues after the highest one issued.
    public init(directory: String, options: Options) throws {
        self.options = options
        self.directory = directory
        guard !options.device.isEmpty, options.device.utf8.count <= 128 else {
            throw EdgeError(.invalidConfig, "queue device id must be 1-128 bytes")
        }
        guard options.maxBytes >= 64 << 10 else {
            throw EdgeError(.invalidConfig, "queue maxBytes must be at least 65536, got \(options.maxBytes)")
        }
        if case .group(let ms) = options.commit, ms < 0 {
            throw EdgeError(.invalidConfig, "group commit window must not be negative")
        }
        segmentBytes = min(max(4096, options.segmentBytes), max(4096, options.maxBytes / 8))
        try PosixDirectory.create(directory)
        lock = try PosixFile(path: directory + "/lock", flags: O_RDWR | O_CREAT, faults: nil)
        try lock.lockExclusive()
        var meta = try QueueMeta.load(directory: directory)
            ?? QueueMeta(device: options.device, bootEpoch: 0, sequenceFloor: 0)
        guard meta.device == options.device else {
            throw EdgeError(.invalidConfig, "\(directory): queue belongs to device '\(meta.device)', not '\(options.device)'")
        }
        logs = try QueueLane.allCases.map { try SegmentLog(lane: $0, root: directory, faults: options.faults) }
        let highest = logs.map(\.maxSeq).max() ?? 0
        meta.bootEpoch &+= 1
        meta.sequenceFloor = max(meta.sequenceFloor, highest)
        stats.bytesWritten += try meta.store(directory: directory, faults: options.faults)
        bootEpoch = meta.bootEpoch
        sequenceFloor = meta.sequenceFloor
        nextSeq = meta.sequenceFloor + 1
        acknowledgedSequence = meta.sequenceFloor
        lastAppendedSeq = meta.sequenceFloor
        cursorFiles = []
        cursors = []
        for log in logs {
            let f = try PosixFile(path: log.directory + "/cursor", flags: O_RDWR | O_CREAT, faults: options.faults)
            cursorFiles.append(f)
            cursors.append(DurableQueue.loadCursor(f) ?? log.start)
        }
        for i in logs.indices {
            if cursors[i] < logs[i].start { cursors[i] = logs[i].start }
            // A cursor past a truncated tail (power loss under `none`) must not skip later appends.
            if let seg = logs[i].segments.first(where: { $0.number == cursors[i].segment }), cursors[i].offset > UInt64(seg.size) {
                cursors[i].offset = UInt64(seg.size)
            }
        }
        stats.truncatedBytes = logs.reduce(0) { $0 + $1.truncatedBytes }
        stats.recoveredRecords = logs.reduce(0) { $0 + $1.recoveredRecords }
        stats.bytesUsed = logs.reduce(0) { $0 + $1.bytesUsed }
    }

    private static func loadCursor(_ f: PosixFile) -> QueuePosition? {
        guard let b = try? f.pread(count: 20, at: 0), b.count == 20 else { return nil }
        return b.withUnsafeBytes { raw in
            guard CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<16])) == RecordFormat.readLE(raw, 16, as: UInt32.self)
            else { return nil }
            return QueuePosition(segment: RecordFormat.readLE(raw, 0, as: UInt64.self), offset: RecordFormat.readLE(raw, 8, as: UInt64.self))
        }
    }

    private var windowNanos: UInt64 {
        switch options.commit {
        case .perMessage: 0
        case .group(let ms): UInt64(ms) * 1_000_000
        case .noSync: 10_000_000
        }
    }

    /// Appends a message and returns its id.
    ///
    /// With ``CommitPolicy/perMessage`` the message is durable when this returns. Otherwise it is
    /// acknowledged at the next successful commit: check ``isAcknowledged(_:)`` or call ``commit()``.
    /// When the disk budget is exhausted, the oldest history (then state) is shed first; an append
    /// that still does not fit throws ``EdgeError/Code/queueFull``. Storage failures throw
    /// ``EdgeError/Code/storageUnavailable`` or ``EdgeError/Code/io`` and never crash.
    @discardableResult
    public func append(_ payload: UnsafeRawBufferPointer, lane: QueueLane, nowNanos: UInt64 = monotonicNow()) throws -> MessageID {
        guard payload.count <= RecordFormat.maxPayload else {
            throw EdgeError(.invalidInput, "queue payload of \(payload.count) bytes exceeds \(RecordFormat.maxPayload)")
        }
        let size = RecordFormat.headerSize + payload.count
        try makeRoom(size, for: lane)
        let log = logs[lane.rawValue]
        if log.activeSize + log.pending.count + size > segmentBytes && log.activeSize > 0 || !log.hasActive {
            try commit()
            try log.rotate(syncDirectory: options.commit != .noSync)
        }
        let seq = nextSeq
        nextSeq += 1
        log.append(seq: seq, boot: bootEpoch, payload: payload)
        lastAppendedSeq = seq
        stats.appends += 1
        stats.payloadBytesIn += payload.count
        stats.bytesUsed += size
        if pendingSince == nil { pendingSince = nowNanos }
        if case .perMessage = options.commit {
            try commit()
        } else if log.pending.count >= 1 << 18 {
            try commit()
        } else {
            try commitIfDue(nowNanos: nowNanos)
        }
        return MessageID(device: options.device, bootEpoch: bootEpoch, sequence: seq)
    }

    /// Appends bytes (convenience).
    @discardableResult
    public func append(_ payload: [UInt8], lane: QueueLane) throws -> MessageID {
        try payload.withUnsafeBytes { try append($0, lane: lane) }
    }

    /// Commits if the oldest unacknowledged append is older than the commit window.
    public func commitIfDue(nowNanos: UInt64 = monotonicNow()) throws {
        guard let since = pendingSince, nowNanos &- since >= windowNanos else { return }
        try commit()
    }

    /// Writes every buffered append and (unless the policy is ``CommitPolicy/noSync``) syncs it;
    /// then acknowledges everything appended so far.
    public func commit() throws {
        guard pendingSince != nil || cursorDirty.contains(true) else { return }
        do {
            for log in logs { stats.bytesWritten += try log.writePending() }
            if options.commit != .noSync {
                for log in logs where try log.sync() { stats.syncs += 1 }
            }
        } catch {
            for log in logs { log.discardPending() }
            if lastAppendedSeq > acknowledgedSequence {
                failedSequences.append((acknowledgedSequence + 1)...lastAppendedSeq)
                if failedSequences.count > 64 { failedSequences.removeFirst() }
                acknowledgedSequence = lastAppendedSeq
            }
            pendingSince = nil
            stats.bytesUsed = logs.reduce(0) { $0 + $1.bytesUsed }
            throw error
        }
        pendingSince = nil
        acknowledgedSequence = lastAppendedSeq
        try persistCursors()
    }

    /// Whether the append with sequence number `seq` (of this boot) is acknowledged.
    public func isAcknowledged(_ seq: UInt64) -> Bool {
        seq <= acknowledgedSequence && !failedSequences.contains { $0.contains(seq) }
    }

    /// Share of the budget the alert lane may use; alerts are never shed, so beyond it an alert
    /// append fails with `queueFull`.
    public static let alertShare = 0.5
    /// Share of the budget the state lane may use; beyond it the oldest state is shed.
    public static let stateShare = 0.25

    /// Makes room for `size` more bytes in `lane`. Alerts and state are capped at a share of the
    /// budget, so history always keeps at least a quarter of it; history is shed first, oldest
    /// first, then the oldest state.
    private func makeRoom(_ size: Int, for lane: QueueLane) throws {
        let log = logs[lane.rawValue]
        switch lane {
        case .alert:
            let cap = Int(Double(options.maxBytes) * DurableQueue.alertShare)
            guard log.bytesUsed + size <= cap else {
                throw EdgeError(.queueFull, "\(directory): queue is full: alerts already use \(log.bytesUsed) of the \(cap) bytes they may use; deliver them first")
            }
        case .state:
            let cap = Int(Double(options.maxBytes) * DurableQueue.stateShare)
            if log.bytesUsed + size > cap {
                try commit()
                try shed(.state) { log.bytesUsed + size > cap }
            }
        case .history:
            break
        }
        guard stats.bytesUsed + size > options.maxBytes else { return }
        try commit()
        try shed(.history) { self.stats.bytesUsed + size > self.options.maxBytes }
        if lane != .history { try shed(.state) { self.stats.bytesUsed + size > self.options.maxBytes } }
        guard stats.bytesUsed + size <= options.maxBytes else {
            throw EdgeError(.queueFull, "\(directory): queue is full (\(options.maxBytes) bytes) and nothing more can be shed for a \(lane.name) message of \(size) bytes")
        }
    }

    /// Drops the oldest segments of `victim` while `needed()` holds and it has data.
    private func shed(_ victim: QueueLane, while needed: () -> Bool) throws {
        let log = logs[victim.rawValue]
        while needed(), log.bytesUsed > 0 {
            try persistFloor()
            let dropped = try log.dropOldest()
            stats.shed[victim, default: 0] += dropped
            let i = victim.rawValue
            if cursors[i] < log.start || (log.segments.count == 1 && log.activeSize == 0) {
                cursors[i] = log.start
                cursorDirty[i] = true
            }
            stats.bytesUsed = logs.reduce(0) { $0 + $1.bytesUsed }
        }
    }

    /// Persists the sequence floor before records are deleted, so sequence numbers never repeat.
    private func persistFloor() throws {
        let floor = max(lastAppendedSeq, sequenceFloor)
        guard floor > sequenceFloor else { return }
        let meta = QueueMeta(device: options.device, bootEpoch: bootEpoch, sequenceFloor: floor)
        stats.bytesWritten += try meta.store(directory: directory, faults: options.faults)
        sequenceFloor = floor
    }

    private func persistCursors() throws {
        for i in logs.indices where cursorDirty[i] {
            var b: [UInt8] = []
            RecordFormat.appendLE(cursors[i].segment, to: &b)
            RecordFormat.appendLE(cursors[i].offset, to: &b)
            RecordFormat.appendLE(CRC32C.checksum(b), to: &b)
            try cursorFiles[i].pwrite(b, at: 0)
            stats.bytesWritten += b.count
            if options.commit != .noSync { try cursorFiles[i].sync() }
            cursorDirty[i] = false
        }
    }

    /// Reads up to `maxRecords` unconsumed, acknowledged records, alerts first, then state, then
    /// history, each lane in order. Reading does not consume: call ``acknowledge(_:)`` once the
    /// server confirmed them (at-least-once delivery; ids make redelivery idempotent).
    public func peek(maxRecords: Int = 256, maxBytes: Int = 1 << 20) throws -> [StoredRecord] {
        try commitIfDue()
        var out: [StoredRecord] = []
        for lane in QueueLane.allCases {
            guard out.count < maxRecords else { break }
            try logs[lane.rawValue].read(
                from: cursors[lane.rawValue], device: options.device, maxRecords: maxRecords, maxBytes: maxBytes, into: &out)
        }
        return out
    }

    /// Reads every stored record of a lane from its first segment, consumed or not (recovery checks).
    public func readAll(lane: QueueLane) throws -> [StoredRecord] {
        var out: [StoredRecord] = []
        try logs[lane.rawValue].read(from: logs[lane.rawValue].start, device: options.device, maxRecords: .max, maxBytes: .max, into: &out)
        return out
    }

    /// Marks records as delivered; fully consumed segments are deleted. The cursor is persisted at
    /// the next commit (immediately under ``CommitPolicy/perMessage``).
    public func acknowledge(_ records: [StoredRecord]) throws {
        for r in records where cursors[r.lane.rawValue] < r.position {
            cursors[r.lane.rawValue] = r.position
            cursorDirty[r.lane.rawValue] = true
        }
        for (i, log) in logs.enumerated() where cursorDirty[i] {
            if log.segments.contains(where: { $0.number < cursors[i].segment || ($0.number == cursors[i].segment && UInt64($0.size) <= cursors[i].offset) }) && log.segments.count > 1 {
                try persistFloor()
                _ = try log.deleteConsumed(before: cursors[i])
            }
        }
        stats.bytesUsed = logs.reduce(0) { $0 + $1.bytesUsed }
        if case .perMessage = options.commit { try persistCursors() } else if pendingSince == nil { pendingSince = monotonicNow() }
    }

    /// Unconsumed records and bytes per lane.
    public func backlog() -> [QueueLane: (records: Int, bytes: Int)] {
        var out: [QueueLane: (records: Int, bytes: Int)] = [:]
        for lane in QueueLane.allCases { out[lane] = logs[lane.rawValue].backlog(after: cursors[lane.rawValue]) }
        return out
    }

    /// Current counters, including the backlog.
    public func currentStats() -> QueueStats {
        var s = stats
        for (lane, b) in backlog() {
            s.pending[lane] = b.records
            s.pendingBytes += b.bytes
        }
        return s
    }
}

/// Monotonic time in nanoseconds (the default clock of ``DurableQueue``).
public func monotonicNow() -> UInt64 { monotonicNanos() }
