/// Drains a ``DurableQueue`` in compressed batches under a rate limit, and estimates drain time.
///
/// A batch holds up to ``maxRecords`` records (alerts first), framed as
/// `count varint | (boot varint | seq varint | lane u8 | len varint | payload)*` and compressed
/// with ``LZCompressor``. The server deduplicates by (device, boot epoch, sequence), so a batch that
/// is resent after a lost acknowledgement does no harm.
public struct Drainer {
    /// A batch ready to send.
    public struct Batch {
        /// The records in the batch (acknowledge them with ``Drainer/delivered(_:now:)``).
        public var records: [StoredRecord]
        /// The compressed frame to send.
        public var body: [UInt8]
        /// Uncompressed frame size.
        public var rawBytes: Int
        /// Seconds to wait before sending, imposed by the rate limit.
        public var wait: Double
    }

    /// Largest number of records per batch.
    public let maxRecords: Int
    /// Largest payload bytes per batch.
    public let maxBytes: Int
    private var bucket: TokenBucket
    /// Observed compressed/raw ratio (1 until the first batch).
    public private(set) var compressionRatio = 1.0
    /// Observed send throughput in compressed bytes per second (EWMA), nil until measured.
    public private(set) var observedThroughput: Double?

    /// Creates a drainer with a rate limit in bytes per second.
    public init(maxRecords: Int = 500, maxBytes: Int = 256 << 10, rateLimit: Double = 262_144, burst: Double = 1_048_576) {
        self.maxRecords = max(1, maxRecords)
        self.maxBytes = max(1, maxBytes)
        bucket = TokenBucket(rate: rateLimit, burst: burst)
    }

    static func varint(_ v: UInt64, into out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Frames records without compression.
    public static func frame(_ records: [StoredRecord]) -> [UInt8] {
        var raw: [UInt8] = []
        varint(UInt64(records.count), into: &raw)
        for r in records {
            varint(UInt64(r.id.bootEpoch), into: &raw)
            varint(r.id.sequence, into: &raw)
            raw.append(UInt8(r.lane.rawValue))
            varint(UInt64(r.payload.count), into: &raw)
            raw += r.payload
        }
        return raw
    }

    /// The next batch, or nil when the queue is empty.
    public mutating func nextBatch(from queue: DurableQueue, now: Double) throws -> Batch? {
        let records = try queue.peek(maxRecords: maxRecords, maxBytes: maxBytes)
        guard !records.isEmpty else { return nil }
        let raw = Drainer.frame(records)
        let body = LZCompressor.compress(raw)
        compressionRatio = Double(body.count) / Double(max(1, raw.count))
        let wait = bucket.take(Double(body.count), now: now)
        return Batch(records: records, body: body, rawBytes: raw.count, wait: wait)
    }

    /// The server confirmed a batch sent in `seconds`: consume it and update the throughput estimate.
    public mutating func delivered(_ batch: Batch, in seconds: Double, queue: DurableQueue) throws {
        try queue.acknowledge(batch.records)
        if seconds > 0 {
            let rate = Double(batch.body.count) / seconds
            observedThroughput = observedThroughput.map { 0.8 * $0 + 0.2 * rate } ?? rate
        }
    }

    /// Estimated seconds to drain the backlog: compressed backlog over the slower of the rate
    /// limit and the observed throughput.
    public func estimatedDrainTime(backlogBytes: Int) -> Double {
        let effective = min(bucket.rate, observedThroughput ?? bucket.rate)
        return Double(backlogBytes) * compressionRatio / effective
    }
}
