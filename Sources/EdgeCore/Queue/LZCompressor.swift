/// A small, dependency-free LZ77 codec for drain batches ("WLZ1").
///
/// Format: `"WLZ1" | originalLength u32 LE | tokens`. A token byte `t < 0x80` is followed by
/// `t + 1` literal bytes; a token `t ≥ 0x80` is a match of length `(t & 0x7F) + 4` at the 16-bit LE
/// distance that follows (1…65535). Telemetry JSON compresses 3–10× (see docs/PERFORMANCE.md).
/// The decoder checks every length and distance, and the output size, so hostile input cannot
/// overrun it.
public enum LZCompressor {
    /// Largest input accepted, bytes.
    public static let maxInput = 64 << 20
    private static let minMatch = 4
    private static let maxMatch = 0x7F + 4
    private static let hashBits = 14

    /// Compresses `input`.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = Array("WLZ1".utf8)
        RecordFormat.appendLE(UInt32(input.count), to: &out)
        out.reserveCapacity(8 + input.count / 2)
        let n = input.count
        var table = [Int32](repeating: -1, count: 1 << hashBits)
        var literalStart = 0
        var i = 0
        input.withUnsafeBufferPointer { src in
            func flushLiterals(_ end: Int) {
                var s = literalStart
                while s < end {
                    let run = min(128, end - s)
                    out.append(UInt8(run - 1))
                    out.append(contentsOf: src[s..<(s + run)])
                    s += run
                }
            }
            while i + minMatch <= n {
                let v = UInt32(src[i]) | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2]) << 16 | UInt32(src[i + 3]) << 24
                let h = Int((v &* 2_654_435_761) >> UInt32(32 - hashBits))
                let cand = Int(table[h])
                table[h] = Int32(i)
                if cand >= 0, i - cand <= 0xFFFF, src[cand] == src[i], src[cand + 1] == src[i + 1],
                    src[cand + 2] == src[i + 2], src[cand + 3] == src[i + 3]
                {
                    var len = minMatch
                    while len < maxMatch, i + len < n, src[cand + len] == src[i + len] { len += 1 }
                    flushLiterals(i)
                    out.append(UInt8(0x80 | (len - minMatch)))
                    RecordFormat.appendLE(UInt16(i - cand), to: &out)
                    i += len
                    literalStart = i
                } else {
                    i += 1
                }
            }
            flushLiterals(n)
        }
        return out
    }

    /// Decompresses a block, rejecting malformed input with ``EdgeError/Code/invalidCompressedData``.
    public static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        let bad = { (why: String) in EdgeError(.invalidCompressedData, "compressed block is malformed: \(why)") }
        guard input.count >= 8, input[0..<4].elementsEqual("WLZ1".utf8) else { throw bad("missing WLZ1 header") }
        let total = input.withUnsafeBytes { Int(RecordFormat.readLE($0, 4, as: UInt32.self)) }
        guard total <= maxInput else { throw bad("declared size \(total) exceeds \(maxInput)") }
        var out: [UInt8] = []
        out.reserveCapacity(total)
        var i = 8
        while i < input.count {
            let t = Int(input[i])
            i += 1
            if t < 0x80 {
                let run = t + 1
                guard i + run <= input.count, out.count + run <= total else { throw bad("literal run overruns") }
                out.append(contentsOf: input[i..<(i + run)])
                i += run
            } else {
                guard i + 2 <= input.count else { throw bad("truncated match") }
                let dist = Int(input[i]) | Int(input[i + 1]) << 8
                i += 2
                let len = (t & 0x7F) + minMatch
                guard dist >= 1, dist <= out.count, out.count + len <= total else { throw bad("match out of range") }
                let from = out.count - dist
                for k in 0..<len { out.append(out[from + k]) }
            }
        }
        guard out.count == total else { throw bad("length \(out.count) differs from declared \(total)") }
        return out
    }
}
