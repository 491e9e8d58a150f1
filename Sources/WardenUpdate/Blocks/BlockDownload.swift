import Foundation
import WardenCore
import WardenPKI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What a downloader knows about an image from the signed targets metadata: enough to verify every block alone.
public struct BlockTarget: Sendable, Hashable, Codable {
    /// SHA-256 of the whole image (`hashes.sha256`), 32 bytes.
    public let sha256: [UInt8]
    /// Image length in bytes (`length`), at least 1.
    public let length: Int
    /// Block size (`custom.block_size`).
    public let blockSize: Int
    /// Merkle root of the block index (`custom.merkle_root`), 32 bytes.
    public let merkleRoot: [UInt8]

    /// Number of blocks: ⌈length / blockSize⌉.
    public var blockCount: Int { (length + blockSize - 1) / blockSize }

    /// Creates a target description.
    /// - Throws: ``WardenError`` `.badInput` if a hash is not 32 bytes, the length is not positive or the block
    ///   size is not a power of two in 4–64 KiB.
    public init(sha256: [UInt8], length: Int, blockSize: Int, merkleRoot: [UInt8]) throws {
        try BlockIndex.validate(blockSize: blockSize)
        guard sha256.count == 32, merkleRoot.count == 32 else { throw WardenError.badInput("target hashes must be 32 bytes") }
        guard length > 0, (length + blockSize - 1) / blockSize <= BlockIndex.maximumBlockCount else {
            throw WardenError.badInput("target length \(length) is out of range")
        }
        self.sha256 = sha256
        self.length = length
        self.blockSize = blockSize
        self.merkleRoot = merkleRoot
    }

    /// The description of an indexed image.
    public init(index: BlockIndex, sha256: [UInt8]) throws {
        try self.init(sha256: sha256, length: index.length, blockSize: index.blockSize, merkleRoot: index.merkleRoot)
    }

    enum CodingKeys: String, CodingKey { case sha256, length, blockSize = "block_size", merkleRoot = "merkle_root" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let hash = Digest.bytes(fromHex: try container.decode(String.self, forKey: .sha256)),
              let root = Digest.bytes(fromHex: try container.decode(String.self, forKey: .merkleRoot))
        else { throw WardenError.badInput("target hashes must be hex") }
        try self.init(sha256: hash, length: try container.decode(Int.self, forKey: .length),
                      blockSize: try container.decode(Int.self, forKey: .blockSize), merkleRoot: root)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Digest.hex(sha256), forKey: .sha256)
        try container.encode(length, forKey: .length)
        try container.encode(blockSize, forKey: .blockSize)
        try container.encode(Digest.hex(merkleRoot), forKey: .merkleRoot)
    }
}

/// One image being downloaded block by block, in any order, across restarts.
///
/// Blocks are written into `<destination>.part` (created at the full length) as they arrive, each only after it
/// verified on its own against the signed Merkle root; a corrupted, truncated, misplaced or foreign block is
/// rejected at that block and never written. Which blocks are held is a bitmap persisted in `<destination>.state`
/// by ``checkpoint()``: the part file is fsynced first, then the state is written atomically, so a bit is never
/// set for data that is not on disk. A new `BlockDownload` for the same destination and target resumes from it.
/// ``finish()`` checks the whole image's SHA-256, fsyncs, and renames the part file onto the destination.
///
/// Memory is the bitmap (one bit per block); the image never sits in memory. Not thread-safe: use it from one task.
public final class BlockDownload {
    /// What happened to one block message.
    public enum Outcome: Sendable, Equatable {
        /// The block verified and was written.
        case stored(index: Int)
        /// The block was already held; nothing was written.
        case duplicate(index: Int)
        /// The block was refused; `index` is the index it claimed (nil if the message is for another image).
        case rejected(index: Int?, reason: String)
    }

    /// The image being downloaded.
    public let target: BlockTarget
    /// Where the finished image goes.
    public let destination: String
    /// The partial image.
    public var partPath: String { destination + ".part" }
    /// The persisted bitmap of held blocks.
    public var statePath: String { destination + ".state" }
    /// Blocks are checkpointed automatically after this many new ones (0: only when ``checkpoint()`` is called).
    public var checkpointInterval: Int

    private var held: [UInt8]
    private var heldCount: Int
    private var sinceCheckpoint = 0
    private var fd: Int32

    /// Opens a download: resumes from `<destination>.state` if it describes the same target and the part file is
    /// intact in size; otherwise starts empty (truncating any stale part file).
    /// - Throws: ``WardenError`` `.storage` if the part file cannot be created.
    public init(target: BlockTarget, destination: String, checkpointInterval: Int = 256) throws {
        self.target = target
        self.destination = destination
        self.checkpointInterval = checkpointInterval
        let bitmapBytes = (target.blockCount + 7) / 8
        var resumed: [UInt8]?
        if let data = FileManager.default.contents(atPath: destination + ".state"),
           let state = try? JSONDecoder().decode(PersistedState.self, from: data),
           state.version == 1, state.target == target,
           let bits = Data(base64Encoded: state.held).map(Array.init), bits.count == bitmapBytes
        {
            resumed = bits
        }
        let flags = O_RDWR | O_CREAT | O_CLOEXEC | (resumed == nil ? O_TRUNC : 0)
        fd = open(destination + ".part", flags, 0o600)
        guard fd >= 0 else {
            throw WardenError.storage("cannot open '\(destination).part': \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if resumed != nil, fstat(fd, &info) != 0 || Int(info.st_size) != target.length {
            resumed = nil
        }
        guard ftruncate(fd, off_t(target.length)) == 0 else {
            close(fd)
            throw WardenError.storage("cannot size '\(destination).part': \(String(cString: strerror(errno)))")
        }
        held = resumed ?? [UInt8](repeating: 0, count: bitmapBytes)
        heldCount = held.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Blocks held so far.
    public var receivedCount: Int { heldCount }
    /// Blocks still missing.
    public var missingCount: Int { target.blockCount - heldCount }
    /// True when every block is held.
    public var isComplete: Bool { heldCount == target.blockCount }

    /// True if block `index` is not held yet.
    public func isMissing(_ index: Int) -> Bool {
        index >= 0 && index < target.blockCount && held[index >> 3] & (0x80 >> UInt8(index & 7)) == 0
    }

    /// Verifies one block message and, if it is good and new, writes it.
    public func accept(_ message: OTAWire.BlockMessage) -> Outcome {
        let header = message.header
        guard header.targetSHA256 == target.sha256 else { return .rejected(index: nil, reason: "block of another image") }
        let index = Int(header.blockIndex)
        guard header.blockSize == target.blockSize, Int(header.blockCount) == target.blockCount, index < target.blockCount else {
            return .rejected(index: index, reason: "block size, count or index does not match the signed target")
        }
        guard BlockIndex.verify(
            block: message.data, index: index, proof: message.proof, root: target.merkleRoot,
            blockCount: target.blockCount, length: target.length, blockSize: target.blockSize)
        else { return .rejected(index: index, reason: "block \(index) does not verify against the signed Merkle root") }
        guard isMissing(index) else { return .duplicate(index: index) }
        return store(index: index, data: message.data)
    }

    /// Writes block `index` received WITHOUT a Merkle proof (the HTTPS Range fallback, `firmware/OTA-PROTOCOL.md`
    /// §8): only its length is checked here, so such a block is verified by ``finish()``'s whole-image SHA-256
    /// (the TUF-signed hash), which discards the whole part file on a mismatch. Blocks that arrive with a proof
    /// should always go through ``accept(_:)``.
    public func acceptUnproven(index: Int, data: [UInt8]) -> Outcome {
        guard index >= 0, index < target.blockCount else { return .rejected(index: nil, reason: "block index \(index) is out of range") }
        let expected = index == target.blockCount - 1 ? target.length - index * target.blockSize : target.blockSize
        guard data.count == expected else {
            return .rejected(index: index, reason: "block \(index) has \(data.count) bytes, not \(expected)")
        }
        guard isMissing(index) else { return .duplicate(index: index) }
        return store(index: index, data: data)
    }

    /// Writes a block at its offset and marks it held.
    private func store(index: Int, data: [UInt8]) -> Outcome {
        let offset = off_t(index) * off_t(target.blockSize)
        var written = 0
        while written < data.count {
            let result = data.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress!.advanced(by: written), raw.count - written, offset + off_t(written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                return .rejected(index: index, reason: "cannot write block \(index): \(String(cString: strerror(errno)))")
            }
            written += result
        }
        held[index >> 3] |= 0x80 >> UInt8(index & 7)
        heldCount += 1
        sinceCheckpoint += 1
        if checkpointInterval > 0, sinceCheckpoint >= checkpointInterval { try? checkpoint() }
        return .stored(index: index)
    }

    /// Decodes a payload received on the block topic and, if it is a block, accepts it. Nil for a status message.
    public func accept(payload: [UInt8]) -> Outcome? {
        do {
            switch try OTAWire.Response(decoding: payload) {
            case .block(let message): return accept(message)
            case .status: return nil
            }
        } catch {
            return .rejected(index: nil, reason: "\(error)")
        }
    }

    /// The missing blocks as a request bitmap starting at the first missing block, covering at most `maxBits`
    /// blocks; nil when complete.
    public func missingSelection(maxBits: Int = OTAWire.maximumBitmapBits) -> OTAWire.Selection? {
        guard let first = (0..<target.blockCount).first(where: isMissing) else { return nil }
        let count = min(target.blockCount - first, max(1, min(maxBits, OTAWire.maximumBitmapBits)))
        var bits = [UInt8](repeating: 0, count: (count + 7) / 8)
        for bit in 0..<count where isMissing(first + bit) { bits[bit >> 3] |= 0x80 >> UInt8(bit & 7) }
        return .bitmap(first: UInt32(first), bitCount: UInt32(count), bits: bits)
    }

    /// A request for the missing blocks by target hash; nil when complete.
    public func request(requestID: UInt64, maxBits: Int = OTAWire.maximumBitmapBits) -> OTAWire.BlockRequest? {
        missingSelection(maxBits: maxBits).map {
            OTAWire.BlockRequest(requestID: requestID, target: .sha256(target.sha256), blockSize: target.blockSize, selection: $0)
        }
    }

    /// Makes the held blocks durable: fsyncs the part file, then writes the bitmap atomically.
    /// - Throws: ``WardenError`` `.storage`.
    public func checkpoint() throws {
        guard fsync(fd) == 0 else { throw WardenError.storage("cannot fsync '\(partPath)': \(String(cString: strerror(errno)))") }
        let state = PersistedState(version: 1, target: target, held: Data(held).base64EncodedString())
        try SecureFile.writeAtomically(Array(try JSONEncoder().encode(state)), to: statePath, mode: 0o600)
        sinceCheckpoint = 0
    }

    /// Completes the download: every block must be held and the whole image must hash to the target's SHA-256;
    /// the part file is fsynced and renamed onto ``destination`` (and the directory fsynced), and the state file
    /// removed.
    /// - Throws: ``WardenError`` `.badInput` if blocks are missing or the image hash differs (the part file is
    ///   then discarded), `.storage` for I/O failures.
    public func finish() throws {
        guard isComplete else { throw WardenError.badInput("download of '\(destination)' still misses \(missingCount) blocks") }
        var hasher = IncrementalSHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while offset < off_t(target.length) {
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { throw WardenError.storage("cannot read '\(partPath)': \(String(cString: strerror(errno)))") }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
            offset += off_t(got)
        }
        guard hasher.finalize() == target.sha256 else {
            held = [UInt8](repeating: 0, count: held.count)
            heldCount = 0
            try? FileManager.default.removeItem(atPath: statePath)
            throw WardenError.badInput("downloaded image '\(destination)' does not match the signed SHA-256")
        }
        guard fsync(fd) == 0 else { throw WardenError.storage("cannot fsync '\(partPath)': \(String(cString: strerror(errno)))") }
        guard rename(partPath, destination) == 0 else {
            throw WardenError.storage("cannot rename '\(partPath)' to '\(destination)': \(String(cString: strerror(errno)))")
        }
        let directory = (destination as NSString).deletingLastPathComponent
        let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
        try? FileManager.default.removeItem(atPath: statePath)
    }

    struct PersistedState: Codable {
        var version: Int
        var target: BlockTarget
        var held: String
    }
}
