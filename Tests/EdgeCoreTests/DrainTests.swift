import EdgeCore
import Foundation
import Testing

@Suite struct DrainTests {
    @Test("full jitter stays within [0, min(cap, base·2ⁿ)] and reaches the cap")
    func backoffBounds() {
        var rng = SplitMix64(seed: 42)
        var b = ReconnectBackoff(base: 0.5, cap: 60, initialSpread: 20)
        var ceilings: [Double] = []
        for _ in 0..<20 {
            let ceiling = b.currentCeiling
            let d = b.nextDelay(using: &rng)
            #expect(d >= 0 && d <= ceiling)
            ceilings.append(ceiling)
        }
        #expect(Array(ceilings.prefix(4)) == [0.5, 1, 2, 4])
        #expect(ceilings.last == 60)
        b.reset()
        #expect(b.currentCeiling == 0.5)
    }

    @Test("full jitter is spread over the whole interval, not clustered at its ceiling")
    func backoffSpread() {
        var rng = SplitMix64(seed: 7)
        var delays: [Double] = []
        for _ in 0..<2000 {
            var b = ReconnectBackoff(base: 1, cap: 8, initialSpread: 0)
            for _ in 0..<10 { _ = b.nextDelay(using: &rng) }
            delays.append(b.nextDelay(using: &rng))
        }
        let mean = delays.reduce(0, +) / Double(delays.count)
        #expect(abs(mean - 4) < 0.3)
        #expect(delays.min()! < 0.1 && delays.max()! > 7.9)
    }

    @Test("the initial delay spreads a 1000-device site over the window")
    func initialSpread() {
        var rng = SplitMix64(seed: 9)
        let b = ReconnectBackoff(initialSpread: 30)
        let starts = (0..<1000).map { _ in b.initialDelay(using: &rng) }
        // No one-second slot holds more than 8 % of the site.
        var slots = [Int](repeating: 0, count: 31)
        for s in starts { slots[Int(s)] += 1 }
        #expect(slots.max()! < 80)
        #expect(starts.allSatisfy { $0 >= 0 && $0 <= 30 })
        #expect(ReconnectBackoff(initialSpread: 0).initialDelay(using: &rng) == 0)
    }

    @Test("token bucket: burst passes, then the rate is enforced")
    func tokenBucket() {
        var t = TokenBucket(rate: 1000, burst: 2000)
        #expect(t.take(1500, now: 0) == 0)
        #expect(t.take(500, now: 0) == 0)
        #expect(abs(t.take(1000, now: 0) - 1.0) < 1e-9)
        // After 3 s the debt is repaid and 1000 tokens accrued... but capped by the burst.
        #expect(t.take(1000, now: 3) == 0)
    }

    @Test("LZ codec round-trips", arguments: [0, 1, 3, 4, 100, 5000, 200_000])
    func lzRoundTrip(size: Int) throws {
        var rng = SplitMix64(seed: UInt64(size))
        var input: [UInt8] = []
        while input.count < size {
            input += Array("{\"kind\":\"value\",\"ts\":\(1_700_000_000 + input.count),\"value\":\(Int(rng.uniform(0, 100)))}\n".utf8)
        }
        input = Array(input.prefix(size))
        let c = LZCompressor.compress(input)
        #expect(try LZCompressor.decompress(c) == input)
        if size >= 5000 { #expect(c.count * 3 < input.count) }
        let random = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(try LZCompressor.decompress(LZCompressor.compress(random)) == random)
    }

    @Test("LZ decoder rejects malformed blocks", arguments: [
        [UInt8](), Array("WLZ0\u{0}\u{0}\u{0}\u{0}".utf8),
        Array("WLZ1".utf8) + [5, 0, 0, 0] + [0x7F, 1],  // literal run past the end
        Array("WLZ1".utf8) + [5, 0, 0, 0] + [0x00, 0x41, 0x80, 0x05, 0x00],  // distance beyond output
        Array("WLZ1".utf8) + [5, 0, 0, 0] + [0x00, 0x41],  // shorter than declared
        Array("WLZ1".utf8) + [0xFF, 0xFF, 0xFF, 0x7F],  // absurd declared size
    ])
    func lzRejects(block: [UInt8]) {
        #expect(throws: EdgeError(.invalidCompressedData, "")) { try LZCompressor.decompress(block) }
    }

    @Test("drainer batches alerts first, compresses, acknowledges and estimates drain time")
    func drainer() throws {
        let dir = temporaryDirectory("drain")
        let q = try DurableQueue(directory: dir, options: .init(device: "d", commit: .noSync))
        for i in 0..<1000 {
            try q.append(Array("{\"ts\":\(1_700_000_000 + i),\"sensor\":\"fuel\",\"value\":\(40 - Double(i) / 100)}".utf8), lane: .history)
        }
        try q.append(Array("{\"alert\":\"low-fuel\"}".utf8), lane: .alert)
        try q.commit()
        var d = Drainer(maxRecords: 300, rateLimit: 10_000, burst: 1000)
        let before = q.currentStats().pendingBytes
        let first = try #require(try d.nextBatch(from: q, now: 0))
        #expect(first.records.first?.lane == .alert)
        #expect(first.records.count == 300)
        #expect(first.body.count * 2 < first.rawBytes)
        #expect(try Drainer.frame(first.records) == LZCompressor.decompress(first.body))
        let eta = d.estimatedDrainTime(backlogBytes: before)
        #expect(eta > 0 && eta < Double(before) / 10_000)
        try d.delivered(first, in: 0.05, queue: q)
        var sent = first.records.count
        var t = 0.0
        while let b = try d.nextBatch(from: q, now: t) {
            t += b.wait
            try d.delivered(b, in: 0.05, queue: q)
            sent += b.records.count
        }
        #expect(sent == 1001)
        #expect(t > 0, "the rate limit must have imposed waits")
        #expect(q.currentStats().pendingBytes == 0)
    }
}
