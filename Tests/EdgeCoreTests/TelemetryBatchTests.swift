import EdgeCore
import Foundation
import Testing

/// The telemetry batch wire format (`TelemetryBatch`): round trips of real pipeline output through a real queue, the
/// limits, and a strict decoder against truncated, forged and inflated input.
@Suite struct TelemetryBatchTests {
    /// Real-looking records: the Mauna Loa CO₂ fixture through the shipped pipeline's JSON Lines encoder.
    static func realRecords(count: Int, device: String = "gw-0001", boot: UInt32 = 3) throws -> [TelemetryBatch.Record] {
        let csv = try Repo.fixture("mauna-loa-co2-weekly.csv").split(separator: "\n").dropFirst()
        let encoder = JSONLEncoder(sensorNames: ["co2"])
        var out: [TelemetryBatch.Record] = []
        // Weeks without a reading ("19580510,") are skipped, as the pipeline would.
        let readings = csv.compactMap { line in line.split(separator: ",", omittingEmptySubsequences: false).last.flatMap { Double($0) } }
        for (i, value) in readings.prefix(count).enumerated() {
            var text = ""
            encoder.encode(.value(sensor: 0, TimedValue(ts: Double(1_700_000_000 + i * 604_800), value: value)), into: &text)
            out.append(TelemetryBatch.Record(
                id: MessageID(device: device, bootEpoch: boot, sequence: UInt64(100 + i)), payload: Array(text.dropLast().utf8)))
        }
        return out
    }

    @Test("round trip of 256 real records through a real queue: ids and payloads exact, compressed ≥ 3× smaller")
    func roundTripFromQueue() throws {
        let dir = temporaryDirectory("telemetry-batch")
        let queue = try DurableQueue(directory: dir, options: .init(device: "gw-0001", commit: .perMessage))
        let records = try Self.realRecords(count: 300)
        try queue.append(Array(#"{"kind":"alert","ts":1,"sensor":"co2","rule":"high","state":"raised"}"#.utf8), lane: .alert)
        for record in records { try queue.append(record.payload, lane: .history) }
        let stored = try queue.peek(maxRecords: TelemetryBatch.maxRecords, maxBytes: TelemetryBatch.targetRawBytes)
        let n = TelemetryBatch.prefixCount(stored)
        #expect(n == 256, "bounded by the record count")
        #expect(stored[0].lane == .alert, "the alert lane first")
        let taken = stored.prefix(n).map { TelemetryBatch.Record(id: $0.id, payload: $0.payload) }
        let wire = try TelemetryBatch.encode(taken)
        let decoded = try TelemetryBatch.decode(wire)
        #expect(decoded.records == taken)
        #expect(decoded.compressed)
        #expect(decoded.records.first?.id.description == "gw-0001/\(queue.bootEpoch)/1")
        #expect(wire.count * 3 < decoded.rawBytes, "\(wire.count) bytes on the wire for \(decoded.rawBytes) raw")
    }

    @Test("the byte budget bounds a batch; one oversized record goes alone; one beyond the cap never")
    func byteBudget() throws {
        let dir = temporaryDirectory("telemetry-budget")
        let queue = try DurableQueue(directory: dir, options: .init(device: "gw-0002", commit: .perMessage))
        for _ in 0..<40 { try queue.append([UInt8](repeating: 0x41, count: 4000), lane: .history) }
        var stored = try queue.peek(maxRecords: 256, maxBytes: 1 << 20)
        let n = TelemetryBatch.prefixCount(stored)
        #expect(n == 16, "16 × ~4 KiB fit in 64 KiB, not 17 (\(n))")
        stored[0].payload = [UInt8](repeating: 0x42, count: 200_000)
        #expect(TelemetryBatch.prefixCount(stored) == 1)
        stored[0].payload = [UInt8](repeating: 0x42, count: TelemetryBatch.maxRawBytes)
        #expect(TelemetryBatch.prefixCount(stored) == 0)
        #expect(throws: EdgeError.self) { try TelemetryBatch.encode([]) }
        let many = (0..<257).map { TelemetryBatch.Record(id: MessageID(device: "d", bootEpoch: 1, sequence: UInt64($0)), payload: []) }
        #expect(throws: EdgeError.self) { try TelemetryBatch.encode(many) }
    }

    @Test("an incompressible record goes raw (flags 0), never larger than raw + header")
    func rawWhenIncompressible() throws {
        var rng = SplitMix64(seed: 11)
        let records = [
            TelemetryBatch.Record(
                id: MessageID(device: "gw-0003", bootEpoch: 1, sequence: 1),
                payload: (0..<2048).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        ]
        let wire = try TelemetryBatch.encode(records)
        #expect(wire[4] == 0)
        let decoded = try TelemetryBatch.decode(wire)
        #expect(!decoded.compressed && decoded.records == records)
        #expect(wire.count == TelemetryBatch.headerSize + decoded.rawBytes)
    }

    /// Rebuilds a batch with a raw body and header fields of our choosing.
    static func forge(flags: UInt8 = 0, count: Int, rawLength: Int? = nil, body: [UInt8]) -> [UInt8] {
        var out = Array("WTB1".utf8) + [flags]
        out += [UInt8(count & 0xFF), UInt8(count >> 8)]
        let length = rawLength ?? body.count
        out += [UInt8(length & 0xFF), UInt8((length >> 8) & 0xFF), UInt8((length >> 16) & 0xFF), UInt8(length >> 24)]
        return out + body
    }

    static func frame(_ id: String, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(id.utf8.count)] + Array(id.utf8) + [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)] + payload
    }

    @Test("strict decoder: every truncation, wrong magic/flags/count, bad ids, trailing garbage, bombs are refused")
    func hostileInput() throws {
        let good = try TelemetryBatch.encode(try Self.realRecords(count: 50))
        #expect(good[4] == TelemetryBatch.compressedFlag)
        // Every proper prefix is refused (and never crashes).
        for cut in 0..<good.count {
            #expect(throws: EdgeError.self, "prefix \(cut)") { try TelemetryBatch.decode(Array(good[0..<cut])) }
        }
        // Trailing garbage after a compressed or a raw body.
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(good + [0]) }
        let raw = Self.forge(count: 1, body: Self.frame("gw-1/1/1", Array("{}".utf8)))
        #expect(try TelemetryBatch.decode(raw).records.count == 1, "the forged baseline is valid")
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(raw + [0x00]) }
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(count: 1, rawLength: 13, body: Self.frame("gw-1/1/1", Array("{}".utf8)) + [0])) }
        // Wrong magic, unknown flags, a count of 0, above 256, or not matching the records.
        var wrong = good
        wrong[3] = UInt8(ascii: "2")
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(wrong) }
        wrong = good
        wrong[4] = 0x03
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(wrong) }
        for count in [0, 2, 257, 65_535] {
            #expect(throws: EdgeError.self, "count \(count)") {
                try TelemetryBatch.decode(Self.forge(count: count, body: Self.frame("gw-1/1/1", Array("{}".utf8))))
            }
        }
        // Bad ids: empty device, wildcard, missing part, leading zero, sign, overflow, not UTF-8, id length 0.
        for id in ["/1/1", "gw+1/1/1", "gw-1/1", "gw-1/01/1", "gw-1/1/-1", "gw-1/4294967296/1", "gw-1/1/18446744073709551616", "gw-1/1/1/1"] {
            #expect(throws: EdgeError.self, "\(id)") { try TelemetryBatch.decode(Self.forge(count: 1, body: Self.frame(id, []))) }
        }
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(count: 1, body: [5, 0xFF, 0x2F, 0x31, 0x2F, 0x31] + [0, 0, 0, 0])) }
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(count: 1, body: [0, 0, 0, 0, 0])) }
        // A payload length pointing past the end.
        var long = Self.frame("gw-1/1/1", Array("{}".utf8))
        long[long.count - 6] = 0xFF
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(count: 1, body: long)) }
        // Bombs: a header declaring more than the cap; a WLZ1 block declaring 64 MiB in 16 bytes; a declared size no
        // LZ stream of this length can reach; a compressed body inflating to more (or less) than the header says.
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(count: 1, rawLength: TelemetryBatch.maxRawBytes + 1, body: [])) }
        let bomb = Array("WLZ1".utf8) + [0, 0, 0, 4] + [0x80, 1, 0, 0x80, 1, 0, 0x80, 1, 0]
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(flags: 1, count: 1, rawLength: 64 << 20, body: bomb)) }
        let ratio = Array("WLZ1".utf8) + [0x00, 0x00, 0x01, 0x00] + [0x00, 0x41] + [UInt8](repeating: 0xFF, count: 6)
        do {
            _ = try TelemetryBatch.decode(Self.forge(flags: 1, count: 1, rawLength: 65_536, body: ratio))
            Issue.record("an impossible inflation ratio was accepted")
        } catch let error as EdgeError {
            #expect(error.message.contains("inflate"), "\(error.message)")
        }
        let record = Self.frame("gw-1/1/1", Array(repeating: UInt8(ascii: "a"), count: 300))
        let packed = LZCompressor.compress(record)
        #expect(throws: EdgeError.self) { try TelemetryBatch.decode(Self.forge(flags: 1, count: 1, rawLength: record.count - 1, body: packed)) }
        #expect(try TelemetryBatch.decode(Self.forge(flags: 1, count: 1, rawLength: record.count, body: packed)).records[0].payload.count == 300)
        // Random garbage and random mutations of a good batch never crash (they may, rarely, still decode).
        var rng = SplitMix64(seed: 5)
        for _ in 0..<2000 {
            var mutated = good
            for _ in 0..<Int(rng.next() % 4 + 1) {
                mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            if let decoded = try? TelemetryBatch.decode(mutated) {
                #expect(decoded.records.count <= TelemetryBatch.maxRecords)
            }
        }
    }
}
