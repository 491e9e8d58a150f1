#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One lane's append-only log: numbered segment files `NNNNNNNNNNNNNNNNNNNN.seg` in a directory.
///
/// Appends go to a user-space buffer; ``writePending()`` hands them to the kernel and ``sync()``
/// makes them durable. Only the newest (active) segment is ever written; older ones are immutable
/// until they are consumed or shed, then deleted whole.
final class SegmentLog {
    struct Segment {
        var number: UInt64
        /// Bytes in the file (written to the kernel).
        var size: Int
        var records: Int
        var lastSeq: UInt64
    }

    let lane: QueueLane
    let directory: String
    let faults: WriteFaultInjector?
    private(set) var segments: [Segment] = []
    private var active: PosixFile?
    private(set) var pending: [UInt8] = []
    private(set) var pendingRecords = 0
    private var pendingLastSeq: UInt64 = 0
    private var dirty = false
    /// Bytes truncated from a torn tail at open.
    private(set) var truncatedBytes = 0
    /// Records found at open.
    private(set) var recoveredRecords = 0
    private(set) var maxSeq: UInt64 = 0

    init(lane: QueueLane, root: String, faults: WriteFaultInjector?) throws {
        self.lane = lane
        self.directory = root + "/" + lane.name
        self.faults = faults
        try PosixDirectory.create(directory)
        let numbers = try PosixDirectory.list(directory).compactMap { name -> UInt64? in
            guard name.hasSuffix(".seg") else { return nil }
            return UInt64(name.dropLast(4))
        }.sorted()
        for (i, n) in numbers.enumerated() {
            try recover(number: n, isLast: i == numbers.count - 1)
        }
        pending.reserveCapacity(1 << 16)
    }

    static func fileName(_ n: UInt64) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, 20 - s.count)) + s + ".seg"
    }

    func path(_ n: UInt64) -> String { directory + "/" + SegmentLog.fileName(n) }

    /// Scans a segment, truncating it at the first torn or corrupt record.
    private func recover(number: UInt64, isLast: Bool) throws {
        let f = try PosixFile(path: path(number), flags: O_RDWR, faults: faults)
        let size = f.size
        let bytes = try f.pread(count: size, at: 0)
        var offset = 0, records = 0
        var last: UInt64 = 0
        bytes.withUnsafeBytes { raw in
            while let d = RecordFormat.decode(raw, at: offset) {
                // Sequence numbers only grow; anything else is garbage from a torn write.
                if d.seq <= last && records > 0 { break }
                last = d.seq
                offset = d.end
                records += 1
            }
        }
        if offset < size {
            truncatedBytes += size - offset
            try f.truncate(to: offset)
            try f.sync()
        }
        recoveredRecords += records
        if last > maxSeq { maxSeq = last }
        if records == 0 && !isLast {
            f.closeNow()
            try PosixDirectory.remove(path(number))
            return
        }
        segments.append(Segment(number: number, size: offset, records: records, lastSeq: last))
        if isLast {
            f.seekToEnd()
            active = f
        }
    }

    /// Bytes on disk plus buffered.
    var bytesUsed: Int { segments.reduce(0) { $0 + $1.size } + pending.count }

    /// Buffers one record.
    func append(seq: UInt64, boot: UInt32, payload: UnsafeRawBufferPointer) {
        RecordFormat.encode(seq: seq, boot: boot, payload: payload, into: &pending)
        pendingRecords += 1
        pendingLastSeq = seq
        if seq > maxSeq { maxSeq = seq }
    }

    /// Starts a new active segment (the previous one must have been written and synced).
    func rotate(syncDirectory: Bool) throws {
        let n = (segments.last?.number ?? 0) + 1
        let f = try PosixFile(path: path(n), flags: O_WRONLY | O_CREAT | O_EXCL | O_APPEND, faults: faults)
        if syncDirectory { try PosixDirectory.sync(directory) }
        active?.closeNow()
        active = f
        segments.append(Segment(number: n, size: 0, records: 0, lastSeq: 0))
    }

    var activeSize: Int { segments.last?.size ?? 0 }
    var hasActive: Bool { active != nil }

    /// Writes buffered records to the active segment. On failure the segment is cut back to its
    /// last complete record and the buffered records are dropped (they were never acknowledged).
    @discardableResult
    func writePending() throws -> Int {
        guard !pending.isEmpty else { return 0 }
        if active == nil { try rotate(syncDirectory: true) }
        guard let f = active else { return 0 }
        let count = pending.count
        do {
            try pending.withUnsafeBytes { try f.write($0) }
        } catch {
            let good = segments[segments.count - 1].size
            try? f.truncate(to: good)
            pending.removeAll(keepingCapacity: true)
            pendingRecords = 0
            throw error
        }
        segments[segments.count - 1].size += count
        segments[segments.count - 1].records += pendingRecords
        segments[segments.count - 1].lastSeq = pendingLastSeq
        pending.removeAll(keepingCapacity: true)
        pendingRecords = 0
        dirty = true
        return count
    }

    /// Drops buffered records (after a failed commit of another lane).
    func discardPending() {
        pending.removeAll(keepingCapacity: true)
        pendingRecords = 0
    }

    /// `fdatasync`s the active segment if it was written since the last sync.
    @discardableResult
    func sync() throws -> Bool {
        guard dirty, let f = active else { return false }
        try f.sync()
        dirty = false
        return true
    }

    /// Deletes the oldest segment; returns how many records it held. The active segment is
    /// emptied instead of deleted, so the log keeps a file to append to.
    func dropOldest() throws -> Int {
        guard let first = segments.first else { return 0 }
        if segments.count == 1 {
            guard let f = active else { return 0 }
            try f.truncate(to: 0)
            segments[0].size = 0
            segments[0].records = 0
            return first.records
        }
        try PosixDirectory.remove(path(first.number))
        segments.removeFirst()
        return first.records
    }

    /// Reads records starting at `from` (a position inside this lane), up to the limits.
    func read(from: QueuePosition, device: String, maxRecords: Int, maxBytes: Int, into out: inout [StoredRecord]) throws {
        var bytes = 0
        for seg in segments where seg.number >= from.segment {
            let start = seg.number == from.segment ? Int(from.offset) : 0
            guard start < seg.size else { continue }
            let f = try PosixFile(path: path(seg.number), flags: O_RDONLY)
            let data = try f.pread(count: seg.size - start, at: start)
            var off = 0
            var stop = false
            data.withUnsafeBytes { raw in
                while out.count < maxRecords, bytes < maxBytes, let d = RecordFormat.decode(raw, at: off) {
                    out.append(StoredRecord(
                        id: MessageID(device: device, bootEpoch: d.boot, sequence: d.seq), lane: lane,
                        payload: Array(raw[d.payloadRange]),
                        position: QueuePosition(segment: seg.number, offset: UInt64(start + d.end))))
                    bytes += d.payloadRange.count
                    off = d.end
                }
                stop = out.count >= maxRecords || bytes >= maxBytes
            }
            if stop { return }
        }
    }

    /// Deletes every segment wholly before `position` (consumed), keeping the active one.
    func deleteConsumed(before position: QueuePosition) throws -> Int {
        var removed = 0
        while segments.count > 1, let first = segments.first,
            first.number < position.segment || (first.number == position.segment && UInt64(first.size) <= position.offset)
        {
            try PosixDirectory.remove(path(first.number))
            segments.removeFirst()
            removed += first.records
        }
        return removed
    }

    /// Unconsumed records and bytes after `position`.
    func backlog(after position: QueuePosition) -> (records: Int, bytes: Int) {
        var records = 0, bytes = 0
        for seg in segments where seg.number >= position.segment {
            if seg.number == position.segment {
                bytes += max(0, seg.size - Int(position.offset))
                // Records are not indexed by offset: estimate the consumed share by bytes.
                if seg.size > 0 {
                    records += Int((Double(seg.records) * Double(max(0, seg.size - Int(position.offset))) / Double(seg.size)).rounded(.up))
                }
            } else {
                bytes += seg.size
                records += seg.records
            }
        }
        return (records, bytes)
    }

    /// The first position of the lane.
    var start: QueuePosition { QueuePosition(segment: segments.first?.number ?? 0, offset: 0) }
}
