/// The telemetry wire format: one MQTT message on `d/<id>/up/telemetry` carries a batch of queued records, each with
/// its idempotent queue id, optionally LZ-compressed (docs/AGENT.md, "Telemetry batches on the wire").
///
/// ```
/// "WTB1" | flags u8 | count u16 LE | rawLength u32 LE | body
/// body = rawLength bytes of records, or (flags bit 0) a WLZ1 block (LZCompressor) that inflates to exactly them
/// record = idLength u8 | id (UTF-8 "<device>/<boot epoch>/<sequence>") | payloadLength u32 LE | payload
/// ```
///
/// The encoder compresses only when that makes the message smaller. The decoder is strict: right magic, no unknown
/// flag bits, 1…``maxRecords`` records, a raw body of at most ``maxRawBytes`` whose length the compressed block must
/// declare before anything is inflated (and which LZ can actually reach from the compressed size, so no
/// "decompression bomb" is ever allocated), ids that parse, and no byte left over anywhere.
public enum TelemetryBatch {
    /// The first four bytes of every batch; the digit is the format version.
    public static let magic: [UInt8] = Array("WTB1".utf8)
    /// Flag bit 0: the body is a WLZ1 block.
    public static let compressedFlag: UInt8 = 0x01
    /// Header size: magic, flags, count, raw length.
    public static let headerSize = 4 + 1 + 2 + 4
    /// Most records in one batch.
    public static let maxRecords = 256
    /// Raw body size the encoder aims to stay under (it still takes one larger record alone).
    public static let targetRawBytes = 64 << 10
    /// Largest raw (decompressed) body accepted: one maximal queue payload with its framing.
    public static let maxRawBytes = RecordFormat.maxPayload + 1024
    /// Longest record id, bytes.
    public static let maxIDBytes = 160
    /// LZCompressor's best case is a 3-byte token producing 131 bytes; a larger declared ratio is malformed.
    static let maxInflation = 44

    /// One record of a batch.
    public struct Record: Sendable, Hashable {
        /// The record's idempotent queue id.
        public var id: MessageID
        /// The record bytes as queued (a pipeline output line: one JSON object).
        public var payload: [UInt8]

        /// Creates a record.
        public init(id: MessageID, payload: [UInt8]) {
            self.id = id
            self.payload = payload
        }
    }

    /// A decoded batch.
    public struct Decoded: Sendable, Hashable {
        /// The records, in batch order.
        public var records: [Record]
        /// Whether the body was compressed.
        public var compressed: Bool
        /// Size of the raw body.
        public var rawBytes: Int
    }

    /// Framed size of one record in the raw body.
    public static func framedSize(idBytes: Int, payloadBytes: Int) -> Int { 1 + idBytes + 4 + payloadBytes }

    /// How many of `records` (a prefix) go into the next batch: at most ``maxRecords``, within ``targetRawBytes``,
    /// and always at least one (if any) unless even that one exceeds ``maxRawBytes``, in which case 0.
    public static func prefixCount(_ records: [StoredRecord]) -> Int {
        var bytes = 0
        var n = 0
        for record in records.prefix(maxRecords) {
            let size = framedSize(idBytes: record.id.description.utf8.count, payloadBytes: record.payload.count)
            if n == 0 {
                guard size <= maxRawBytes else { return 0 }
            } else if bytes + size > targetRawBytes {
                break
            }
            bytes += size
            n += 1
        }
        return n
    }

    /// Encodes `records` (1…``maxRecords``, raw body ≤ ``maxRawBytes``), compressing when that shrinks the message.
    /// - Throws: ``EdgeError/Code/invalidInput`` when the records break a limit.
    public static func encode(_ records: [Record]) throws -> [UInt8] {
        guard (1...maxRecords).contains(records.count) else {
            throw EdgeError(.invalidInput, "a telemetry batch holds 1-\(maxRecords) records, not \(records.count)")
        }
        var raw: [UInt8] = []
        for record in records {
            let id = Array(record.id.description.utf8)
            guard id.count <= maxIDBytes else { throw EdgeError(.invalidInput, "telemetry record id is longer than \(maxIDBytes) bytes") }
            raw.append(UInt8(id.count))
            raw += id
            RecordFormat.appendLE(UInt32(record.payload.count), to: &raw)
            raw += record.payload
        }
        guard raw.count <= maxRawBytes else {
            throw EdgeError(.invalidInput, "telemetry batch of \(raw.count) bytes exceeds \(maxRawBytes)")
        }
        let packed = LZCompressor.compress(raw)
        let compress = packed.count < raw.count
        var out = magic
        out.append(compress ? compressedFlag : 0)
        RecordFormat.appendLE(UInt16(records.count), to: &out)
        RecordFormat.appendLE(UInt32(raw.count), to: &out)
        out += compress ? packed : raw
        return out
    }

    /// Decodes a batch strictly.
    /// - Throws: ``EdgeError/Code/invalidInput`` naming what is wrong (or ``EdgeError/Code/invalidCompressedData``
    ///   for a malformed WLZ1 block).
    public static func decode(_ bytes: [UInt8]) throws -> Decoded {
        func bad(_ why: String) -> EdgeError { EdgeError(.invalidInput, "telemetry batch is malformed: \(why)") }
        guard bytes.count >= headerSize else { throw bad("\(bytes.count) bytes is shorter than the header") }
        guard bytes[0..<4].elementsEqual(magic) else { throw bad("wrong magic (not WTB1)") }
        let flags = bytes[4]
        guard flags & ~compressedFlag == 0 else { throw bad("unknown flags 0x\(String(flags, radix: 16))") }
        let (count, rawLength) = bytes.withUnsafeBytes {
            (Int(RecordFormat.readLE($0, 5, as: UInt16.self)), Int(RecordFormat.readLE($0, 7, as: UInt32.self)))
        }
        guard (1...maxRecords).contains(count) else { throw bad("record count \(count) is outside 1-\(maxRecords)") }
        guard rawLength <= maxRawBytes else { throw bad("declared size \(rawLength) exceeds \(maxRawBytes)") }
        let body = Array(bytes[headerSize...])
        let compressed = flags & compressedFlag != 0
        let raw: [UInt8]
        if compressed {
            guard body.count >= 8, body[0..<4].elementsEqual("WLZ1".utf8) else { throw bad("compressed body lacks its WLZ1 header") }
            let declared = body.withUnsafeBytes { Int(RecordFormat.readLE($0, 4, as: UInt32.self)) }
            guard declared == rawLength else { throw bad("compressed body declares \(declared) bytes, the header \(rawLength)") }
            guard rawLength <= (body.count - 8) * maxInflation else {
                throw bad("declared size \(rawLength) is more than LZ can inflate \(body.count) bytes to")
            }
            raw = try LZCompressor.decompress(body)
            guard raw.count == rawLength else { throw bad("compressed body inflates to \(raw.count) bytes, not \(rawLength)") }
        } else {
            guard body.count == rawLength else { throw bad("raw body is \(body.count) bytes, the header says \(rawLength)") }
            raw = body
        }
        var records: [Record] = []
        records.reserveCapacity(count)
        var i = 0
        try raw.withUnsafeBytes { buffer in
            while i < raw.count {
                guard records.count < count else { throw bad("bytes left after \(count) records") }
                let idLength = Int(raw[i])
                i += 1
                guard idLength > 0, i + idLength + 4 <= raw.count else { throw bad("record \(records.count) is truncated") }
                let id = try parseID(raw[i..<(i + idLength)])
                i += idLength
                let payloadLength = Int(RecordFormat.readLE(buffer, i, as: UInt32.self))
                i += 4
                guard payloadLength <= raw.count - i else { throw bad("record \(records.count)'s payload is truncated") }
                records.append(Record(id: id, payload: Array(raw[i..<(i + payloadLength)])))
                i += payloadLength
            }
        }
        guard records.count == count else { throw bad("\(records.count) records, the header says \(count)") }
        return Decoded(records: records, compressed: compressed, rawBytes: rawLength)
    }

    /// Parses `<device>/<boot epoch>/<sequence>`: a device of 1-128 bytes without `/`, `+`, `#` or control
    /// characters, and two canonical decimal numbers (no sign, no leading zero) that fit u32 and u64.
    /// - Throws: ``EdgeError/Code/invalidInput``.
    public static func parseID(_ bytes: ArraySlice<UInt8>) throws -> MessageID {
        func bad() -> EdgeError {
            EdgeError(.invalidInput, "telemetry batch is malformed: bad record id '\(String(decoding: bytes.prefix(maxIDBytes), as: UTF8.self))'")
        }
        let parts = bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw bad() }
        let device = String(decoding: parts[0], as: UTF8.self)
        guard (1...128).contains(parts[0].count), device.utf8.elementsEqual(parts[0]),
            !parts[0].contains(where: { $0 < 0x21 || $0 == 0x7F || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }),
            let boot = decimal(parts[1]), boot <= UInt64(UInt32.max), let sequence = decimal(parts[2])
        else { throw bad() }
        return MessageID(device: device, bootEpoch: UInt32(boot), sequence: sequence)
    }

    static func decimal(_ digits: ArraySlice<UInt8>) -> UInt64? {
        guard (1...20).contains(digits.count), digits.count == 1 || digits.first != UInt8(ascii: "0") else { return nil }
        var value: UInt64 = 0
        for d in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(d) else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = s
        }
        return value
    }
}
