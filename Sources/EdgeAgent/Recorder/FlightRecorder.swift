import Dispatch
import Foundation
import WardenCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The agent's flight recorder: a bounded ring of log lines, decisions, connection and health events on disk under
/// `<state>/recorder`, which the authority queries remotely (``RecorderFeature``, `warden device timeline`).
///
/// - Bounded: ``Options/segmentCount`` segment files of at most ``Options/segmentBytes`` each; when the current one
///   is full the oldest is truncated and reused, so the ring never exceeds their product (4 MiB by default).
/// - Crash tolerant: every entry carries its length and a CRC-32C; a torn tail (kill -9 or power loss mid-write) is
///   skipped when reading and cut off when the ring is reopened.
/// - Cheap for the caller: ``record(_:subsystem:_:)`` only appends to a bounded in-memory buffer. A private queue
///   writes the buffer every second and syncs it (`fsync`) at most once a second, or at once after an important
///   entry (anything but a plain log line).
/// - Never fails the caller: a disk error (the directory cannot be created, the disk is full) marks the `recorder`
///   subsystem degraded in ``AgentHealth``; entries wait in memory (the oldest dropped beyond
///   ``Options/pendingBytes``) and the recorder retries every second, recovering to `ok` once writes succeed.
public final class FlightRecorder: Sendable {
    /// Sizes and timings.
    public struct Options: Sendable {
        /// How many segment files form the ring (at least 2).
        public var segmentCount: Int
        /// The largest size of one segment, bytes.
        public var segmentBytes: Int
        /// Unwritten entries kept in memory while the disk fails, bytes; older ones are dropped beyond.
        public var pendingBytes: Int
        /// How often buffered entries are written, and the shortest time between two syncs of plain log lines.
        public var flushInterval: Duration

        /// Creates options; the defaults keep the ring at 4 MiB (4 × 1 MiB).
        public init(segmentCount: Int = 4, segmentBytes: Int = 1 << 20, pendingBytes: Int = 256 << 10, flushInterval: Duration = .seconds(1)) {
            self.segmentCount = max(2, segmentCount)
            self.segmentBytes = max(4096, segmentBytes)
            self.pendingBytes = max(4096, pendingBytes)
            self.flushInterval = flushInterval
        }
    }

    /// The result of ``query(since:until:limit:)``.
    public struct QueryResult: Sendable, Equatable {
        /// The matching entries, oldest first (the newest `limit` of them when more matched).
        public var entries: [RecorderEntry]
        /// How many entries matched the time range.
        public var matched: Int
        /// Whether entries were left out because of the limit.
        public var truncated: Bool { matched > entries.count }
    }

    /// The name of the recorder in the health board.
    public static let healthName = "recorder"
    /// The largest number of entries one query returns.
    public static let maximumQueryLimit = RecorderWire.maximumLimit

    /// The recorder's directory inside the agent's state directory.
    public static func directory(state: String) -> String { state + "/recorder" }

    private struct Pending {
        var entries: [RecorderEntry] = []
        var bytes = 0
        var dropped = 0
        var flushScheduled = false
        var closed = false
    }

    /// The directory of the segment files.
    public let directory: String
    /// The options in force.
    public let options: Options
    private let health: AgentHealth?
    private let clock: @Sendable () -> Date
    private let pending = Mutex(Pending())
    private let queue = DispatchQueue(label: "warden-agent.recorder")
    private let disk: Disk

    /// Opens (or creates) the ring in `directory`. Never throws: a directory that cannot be used marks the recorder
    /// degraded in `health` and is retried every ``Options/flushInterval``.
    public init(directory: String, options: Options = Options(), health: AgentHealth? = nil, clock: @escaping @Sendable () -> Date = Date.init) {
        self.directory = directory
        self.options = options
        self.health = health
        self.clock = clock
        self.disk = Disk(directory: directory, options: options)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        disk.timer = timer
        queue.sync { self.reportDisk(self.disk.openIfNeeded()) }
        let interval = options.flushInterval.components
        let nanos = Int(interval.seconds) * 1_000_000_000 + Int(interval.attoseconds / 1_000_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(nanos), repeating: .nanoseconds(max(1_000_000, nanos)))
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
    }

    deinit {
        disk.timer?.cancel()
    }

    /// Records an entry. Cheap and never fails: the entry is buffered and written by the recorder's own queue.
    public func record(_ kind: RecorderEntry.Kind, subsystem: String, _ message: String) {
        let entry = RecorderEntry(time: Int64((clock().timeIntervalSince1970 * 1000).rounded(.down)), kind: kind, subsystem: subsystem, message: message)
        let size = RecorderEntry.headerSize + RecorderEntry.fixedBodySize + entry.subsystem.utf8.count + entry.message.utf8.count
        let schedule: Bool = pending.withLock { state in
            guard !state.closed else { return false }
            state.entries.append(entry)
            state.bytes += size
            while state.bytes > options.pendingBytes, state.entries.count > 1 {
                let first = state.entries.removeFirst()
                state.bytes -= RecorderEntry.headerSize + RecorderEntry.fixedBodySize + first.subsystem.utf8.count + first.message.utf8.count
                state.dropped += 1
            }
            guard kind.isImportant, !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if schedule { queue.async { self.flush(sync: true) } }
    }

    /// Watches `health` (now, then every ``Options/flushInterval``) and records each subsystem's state changes as
    /// ``RecorderEntry/Kind/health`` entries.
    public func watch(_ health: AgentHealth) {
        queue.async {
            self.disk.watchedHealth = health
            self.recordHealthChanges(health)
        }
    }

    /// Writes and syncs everything buffered (waits for the recorder's queue).
    public func flush() {
        queue.sync { self.flush(sync: true) }
    }

    /// Flushes, stops the timer, and drops any later ``record(_:subsystem:_:)``.
    public func close() {
        queue.sync {
            self.flush(sync: true)
            self.pending.withLock { $0.closed = true }
            self.disk.timer?.cancel()
        }
    }

    /// The entries with `since ≤ time ≤ until` (unix ms), oldest first; at most `limit` (the newest ones), capped at
    /// ``maximumQueryLimit``. Reads the ring and the entries not yet written (when the disk fails, those are all
    /// there is).
    public func query(since: Int64, until: Int64, limit: Int) -> QueryResult {
        queue.sync { self.read(since: since, until: until, limit: limit) }
    }

    /// ``query(since:until:limit:)`` without blocking the caller's thread.
    public func query(since: Int64, until: Int64, limit: Int) async -> QueryResult {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: self.read(since: since, until: until, limit: limit)) }
        }
    }

    // MARK: - On the recorder's queue

    private func tick() {
        if let watched = disk.watchedHealth { recordHealthChanges(watched) }
        flush(sync: ContinuousClock.now - disk.lastSync >= options.flushInterval)
    }

    private func recordHealthChanges(_ health: AgentHealth) {
        let now = health.entries
        let before = disk.previousHealth
        disk.previousHealth = now
        for (name, entry) in now.sorted(by: { $0.key < $1.key }) where before[name]?.state != entry.state || before[name]?.reason != entry.reason {
            let was = before[name]?.state ?? "new"
            record(.health, subsystem: name, "\(was) → \(entry.state)" + (entry.reason.map { ": \($0)" } ?? ""))
        }
    }

    private func flush(sync: Bool) {
        let (batch, dropped) = pending.withLock { state in
            defer {
                state.entries = []
                state.bytes = 0
                state.dropped = 0
                state.flushScheduled = false
            }
            return (state.entries, state.dropped)
        }
        guard !batch.isEmpty || dropped > 0 else { return }
        var entries = batch
        if dropped > 0 {
            let time = Int64((clock().timeIntervalSince1970 * 1000).rounded(.down))
            entries.insert(RecorderEntry(time: time, kind: .fault, subsystem: Self.healthName, message: "\(dropped) entries lost while the recorder could not write"), at: 0)
        }
        let (written, failure) = disk.append(entries, sync: sync)
        if sync, failure == nil { disk.lastSync = ContinuousClock.now }
        reportDisk(failure)
        if failure != nil {
            // Keep what could not be written (bounded), oldest first, for the next attempt.
            pending.withLock { state in
                state.entries = Array(entries[written...]) + state.entries
                state.bytes = state.entries.reduce(0) { $0 + RecorderEntry.headerSize + RecorderEntry.fixedBodySize + $1.subsystem.utf8.count + $1.message.utf8.count }
                while state.bytes > options.pendingBytes, state.entries.count > 1 {
                    let first = state.entries.removeFirst()
                    state.bytes -= RecorderEntry.headerSize + RecorderEntry.fixedBodySize + first.subsystem.utf8.count + first.message.utf8.count
                    state.dropped += 1
                }
            }
        }
    }

    private func reportDisk(_ failure: String?) {
        guard let health else { return }
        if let failure {
            health.degraded(Self.healthName, reason: failure)
        } else if health.entry(Self.healthName)?.state != "ok" {
            health.ok(Self.healthName)
        }
    }

    private func read(since: Int64, until: Int64, limit: Int) -> QueryResult {
        flush(sync: false)
        var entries = disk.readAll()
        var next = (entries.map(\.seq).max() ?? 0) + 1
        for var entry in pending.withLock({ $0.entries }) {
            entry.seq = next
            next += 1
            entries.append(entry)
        }
        let matching = entries.filter { $0.time >= since && $0.time <= until }.sorted { $0.seq < $1.seq }
        let cap = max(0, min(limit, Self.maximumQueryLimit))
        return QueryResult(entries: Array(matching.suffix(cap)), matched: matching.count)
    }
}

/// The segment files; only used on the recorder's queue.
private final class Disk: @unchecked Sendable {
    let directory: String
    let options: FlightRecorder.Options
    var fd: Int32 = -1
    var segment = 0
    var offset = 0
    var nextSeq: UInt64 = 1
    var lastSync = ContinuousClock.now
    var watchedHealth: AgentHealth?
    var previousHealth: [String: AgentHealth.Entry] = [:]
    var timer: (any DispatchSourceTimer)?

    init(directory: String, options: FlightRecorder.Options) {
        self.directory = directory
        self.options = options
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    func path(_ index: Int) -> String { directory + "/segment-\(index).log" }

    /// Opens the ring if it is not open: creates the directory, finds the segment holding the newest entry and cuts
    /// any torn tail off it. Returns a failure description, or nil.
    func openIfNeeded() -> String? {
        if fd >= 0 { return nil }
        var info = stat()
        if stat(directory, &info) != 0 {
            if mkdir(directory, 0o700) != 0 { return "cannot create '\(directory)': \(String(cString: strerror(errno)))" }
        } else if (info.st_mode & mode_t(S_IFMT)) != mode_t(S_IFDIR) {
            return "'\(directory)' is not a directory"
        }
        var newest: (segment: Int, seq: UInt64, end: Int)?
        for index in 0..<options.segmentCount {
            let scan = Self.scan(path(index), limit: options.segmentBytes)
            if let last = scan.lastSeq, newest == nil || last > newest!.seq { newest = (index, last, scan.validEnd) }
        }
        segment = newest?.segment ?? 0
        nextSeq = (newest?.seq ?? 0) + 1
        let file = open(path(segment), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard file >= 0 else { return "cannot open '\(path(segment))': \(String(cString: strerror(errno)))" }
        offset = newest?.end ?? 0
        if ftruncate(file, off_t(offset)) != 0 {
            let reason = "cannot truncate '\(path(segment))': \(String(cString: strerror(errno)))"
            close(file)
            return reason
        }
        fd = file
        return nil
    }

    /// Writes `entries` (assigning their sequence numbers), rotating segments as they fill; syncs if asked.
    /// Returns how many of them were written, and a failure description or nil.
    func append(_ entries: [RecorderEntry], sync: Bool) -> (written: Int, failure: String?) {
        if let failure = openIfNeeded() { return (0, failure) }
        var buffer: [UInt8] = []
        var written = 0
        for index in entries.indices {
            var entry = entries[index]
            entry.seq = nextSeq + UInt64(index - written)
            let record = entry.encoded()
            if offset + buffer.count + record.count > options.segmentBytes {
                if let failure = write(buffer) { return (written, failure) }
                nextSeq += UInt64(index - written)
                written = index
                buffer = []
                if let failure = rotate() { return (written, failure) }
            }
            buffer += record
        }
        if let failure = write(buffer) { return (written, failure) }
        nextSeq += UInt64(entries.count - written)
        written = entries.count
        if sync, fsync(fd) != 0 { return (written, drop("fsync '\(path(segment))'")) }
        return (written, nil)
    }

    private func write(_ bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty else { return nil }
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard written == bytes.count else {
            if written >= 0 { errno = ENOSPC }
            return drop("write '\(path(segment))'")
        }
        offset += bytes.count
        return nil
    }

    private func rotate() -> String? {
        fsync(fd)
        close(fd)
        fd = -1
        segment = (segment + 1) % options.segmentCount
        let file = open(path(segment), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard file >= 0 else { return "cannot open '\(path(segment))': \(String(cString: strerror(errno)))" }
        fd = file
        offset = 0
        return nil
    }

    /// Closes the file after a failure so the next attempt reopens (and rescans) the ring.
    private func drop(_ what: String) -> String {
        let reason = "\(what): \(String(cString: strerror(errno)))"
        if fd >= 0 { close(fd) }
        fd = -1
        return reason
    }

    /// Every intact entry of every segment (a segment that cannot be read contributes nothing).
    func readAll() -> [RecorderEntry] {
        var all: [RecorderEntry] = []
        for index in 0..<options.segmentCount { all += Self.scan(path(index), limit: options.segmentBytes).entries }
        return all
    }

    /// The intact entries at the start of a segment, up to the first torn or corrupt one.
    static func scan(_ path: String, limit: Int) -> (entries: [RecorderEntry], lastSeq: UInt64?, validEnd: Int) {
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { return ([], nil, 0) }
        defer { close(file) }
        var bytes = [UInt8](repeating: 0, count: limit + RecorderEntry.headerSize + RecorderEntry.maximumBodySize)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(file, $0.baseAddress! + count, $0.count - count) }
            if n <= 0 { break }
            count += n
        }
        var entries: [RecorderEntry] = []
        var offset = 0
        bytes.withUnsafeBytes { raw in
            let valid = UnsafeRawBufferPointer(rebasing: raw[0..<count])
            while let (entry, size) = RecorderEntry.decode(valid, at: offset) {
                entries.append(entry)
                offset += size
            }
        }
        return (entries, entries.last?.seq, offset)
    }
}
