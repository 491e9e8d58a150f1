/// The on-disk record: `len u32 | crc32c u32 | seq u64 | boot u32 | payload[len]`, little endian.
/// The CRC covers `len`, `seq`, `boot` and the payload, so a torn or corrupted header is detected.
enum RecordFormat {
    static let headerSize = 20
    /// Largest payload accepted by ``DurableQueue/append(_:lane:)``.
    static let maxPayload = 1 << 20

    static func appendLE<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    static func readLE<T: FixedWidthInteger>(_ b: UnsafeRawBufferPointer, _ at: Int, as: T.Type) -> T {
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[at..<(at + MemoryLayout<T>.size)]))
        }
        return T(littleEndian: v)
    }

    static func encode(seq: UInt64, boot: UInt32, payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let start = out.count
        appendLE(UInt32(payload.count), to: &out)
        appendLE(UInt32(0), to: &out)
        appendLE(seq, to: &out)
        appendLE(boot, to: &out)
        out.append(contentsOf: payload)
        let crc = out.withUnsafeBytes { b -> UInt32 in
            let c = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: b[start..<(start + 4)]))
            return CRC32C.update(c, UnsafeRawBufferPointer(rebasing: b[(start + 8)...]))
        }
        withUnsafeBytes(of: crc.littleEndian) { c in
            for i in 0..<4 { out[start + 4 + i] = c[i] }
        }
    }

    /// A decoded record header and where its payload lies.
    struct Decoded {
        var seq: UInt64
        var boot: UInt32
        var payloadRange: Range<Int>
        var end: Int
    }

    /// Decodes the record at `offset`, or nil if it is torn or corrupt.
    static func decode(_ b: UnsafeRawBufferPointer, at offset: Int) -> Decoded? {
        guard b.count - offset >= headerSize else { return nil }
        let len = Int(readLE(b, offset, as: UInt32.self))
        guard len <= maxPayload, b.count - offset - headerSize >= len else { return nil }
        let stored = readLE(b, offset + 4, as: UInt32.self)
        var c = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: b[offset..<(offset + 4)]))
        c = CRC32C.update(c, UnsafeRawBufferPointer(rebasing: b[(offset + 8)..<(offset + headerSize + len)]))
        guard c == stored else { return nil }
        return Decoded(
            seq: readLE(b, offset + 8, as: UInt64.self), boot: readLE(b, offset + 16, as: UInt32.self),
            payloadRange: (offset + headerSize)..<(offset + headerSize + len), end: offset + headerSize + len)
    }
}
