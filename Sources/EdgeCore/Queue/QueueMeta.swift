/// The queue's metadata file: device id, boot epoch and the sequence floor.
///
/// Written atomically (temporary file, `fsync`, `rename`, directory `fsync`) and checksummed.
/// Format: `"WQM1" | boot u32 | floor u64 | idLen u16 | id | crc32c u32`.
struct QueueMeta: Equatable {
    var device: String
    var bootEpoch: UInt32
    /// Every sequence number up to this one has been issued (some may have been deleted).
    var sequenceFloor: UInt64

    static let fileName = "meta"

    func encoded() -> [UInt8] {
        var out: [UInt8] = Array("WQM1".utf8)
        RecordFormat.appendLE(bootEpoch, to: &out)
        RecordFormat.appendLE(sequenceFloor, to: &out)
        let id = Array(device.utf8)
        RecordFormat.appendLE(UInt16(id.count), to: &out)
        out += id
        RecordFormat.appendLE(CRC32C.checksum(out), to: &out)
        return out
    }

    static func decode(_ b: [UInt8], path: String) throws -> QueueMeta {
        let bad = EdgeError(.corrupt, "\(path): queue metadata is corrupt")
        guard b.count >= 22, b[0..<4].elementsEqual("WQM1".utf8) else { throw bad }
        return try b.withUnsafeBytes { raw in
            let idLen = Int(RecordFormat.readLE(raw, 16, as: UInt16.self))
            guard b.count == 18 + idLen + 4 else { throw bad }
            let crc = RecordFormat.readLE(raw, 18 + idLen, as: UInt32.self)
            guard CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<(18 + idLen)])) == crc else { throw bad }
            return QueueMeta(
                device: String(decoding: b[18..<(18 + idLen)], as: UTF8.self),
                bootEpoch: RecordFormat.readLE(raw, 4, as: UInt32.self),
                sequenceFloor: RecordFormat.readLE(raw, 8, as: UInt64.self))
        }
    }

    static func load(directory: String) throws -> QueueMeta? {
        let path = directory + "/" + fileName
        let f: PosixFile
        do {
            f = try PosixFile(path: path, flags: O_RDONLY)
        } catch let e as EdgeError where e.message.contains("No such file") {
            return nil
        }
        return try decode(f.pread(count: 4096, at: 0), path: path)
    }

    func store(directory: String, faults: WriteFaultInjector?) throws -> Int {
        let tmp = directory + "/" + QueueMeta.fileName + ".tmp"
        let bytes = encoded()
        let f = try PosixFile(path: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, faults: faults)
        try bytes.withUnsafeBytes { try f.write($0) }
        try f.sync()
        f.closeNow()
        try PosixDirectory.rename(tmp, directory + "/" + QueueMeta.fileName)
        try PosixDirectory.sync(directory)
        return bytes.count
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
