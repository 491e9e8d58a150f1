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

/// A Merkle tree over the SHA-256 hashes of an image's fixed-size blocks, so that each block delivered on its
/// own (one MQTT message) can be verified on its own against a root that the signed TUF targets metadata carries
/// (`custom.block_size`, `custom.merkle_root`, and the target's `length`).
///
/// The tree is the one of RFC 9162 §2.1.1 (RFC 6962 §2.1), with its domain separation:
/// - leaf hash = SHA-256(0x00 ‖ block bytes);
/// - node hash = SHA-256(0x01 ‖ left ‖ right);
/// - for n > 1 leaves, the root is the node hash of the tree over the first k leaves and the tree over the rest,
///   where k is the largest power of two smaller than n. Built bottom up, this is "pair neighbours; a lone last
///   node is carried up unchanged", which is how ``proof(forBlock:)`` and ``verify(block:index:proof:root:blockCount:length:blockSize:)``
///   walk it.
/// - an image of zero bytes has zero blocks and the root SHA-256 of the empty string; no block verifies against it.
///
/// Every block is `blockSize` bytes long except the last, which holds the remaining `length − (n−1)·blockSize`
/// bytes (1…blockSize). Verification checks that exact length, so a truncated or padded block is refused, and it
/// takes `blockCount` from the signed `length` rather than from the sender.
public struct BlockIndex: Sendable, Equatable {
    /// The smallest block size accepted: 4 KiB.
    public static let minimumBlockSize = 4 * 1024
    /// The largest block size accepted: 64 KiB.
    public static let maximumBlockSize = 64 * 1024
    /// The largest number of blocks an image may have (block indexes travel as 32-bit integers on the wire).
    public static let maximumBlockCount = Int(UInt32.max)
    /// The length in bytes of a hash in the tree (SHA-256).
    public static let hashLength = 32

    /// The block size in bytes: a power of two in 4 KiB…64 KiB.
    public let blockSize: Int
    /// The number of blocks: ⌈length / blockSize⌉.
    public let blockCount: Int
    /// The image length in bytes.
    public let length: Int
    /// The tree, bottom up: `levels[0]` holds the leaf hashes, the last level holds the root. Each level is a flat
    /// array of 32-byte hashes. About 64 bytes per block in total.
    private let levels: [[UInt8]]

    /// Indexes an image held in memory.
    /// - Throws: ``WardenError`` `.badInput` if `blockSize` is not a power of two in 4 KiB…64 KiB.
    public init(image: [UInt8], blockSize: Int) throws {
        try Self.validate(blockSize: blockSize)
        var leaves: [UInt8] = []
        let count = (image.count + blockSize - 1) / blockSize
        guard count <= Self.maximumBlockCount else {
            throw WardenError.badInput("image of \(image.count) bytes has more than \(Self.maximumBlockCount) blocks")
        }
        leaves.reserveCapacity(count * Self.hashLength)
        image.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let end = min(offset + blockSize, raw.count)
                leaves.append(contentsOf: Self.leafHash(UnsafeRawBufferPointer(rebasing: raw[offset..<end])))
                offset = end
            }
        }
        self.init(blockSize: blockSize, length: image.count, leaves: leaves)
    }

    /// Indexes the image file at `path`, reading it one block at a time: memory is one block plus the tree
    /// (about 64 bytes per block), whatever the image size.
    /// - Throws: ``WardenError`` `.badInput` for a bad block size, `.notFound` / `.storage` if the file cannot be read.
    public init(contentsOf path: String, blockSize: Int) throws {
        try Self.validate(blockSize: blockSize)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            if errno == ENOENT { throw WardenError.notFound("image file '\(path)' does not exist") }
            throw WardenError.storage("image file '\(path)' cannot be opened: \(reason)")
        }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: blockSize)
        var leaves: [UInt8] = []
        var length = 0
        while true {
            // Fill one whole block (read may return less than asked), or stop at end of file.
            var filled = 0
            while filled < blockSize {
                let got = buffer.withUnsafeMutableBytes { raw in
                    read(fd, raw.baseAddress!.advanced(by: filled), blockSize - filled)
                }
                if got < 0 {
                    if errno == EINTR { continue }
                    throw WardenError.storage("image file '\(path)' cannot be read: \(String(cString: strerror(errno)))")
                }
                if got == 0 { break }
                filled += got
            }
            if filled == 0 { break }
            length += filled
            guard leaves.count / Self.hashLength < Self.maximumBlockCount else {
                throw WardenError.badInput("image file '\(path)' has more than \(Self.maximumBlockCount) blocks")
            }
            buffer.withUnsafeBytes { raw in
                leaves.append(contentsOf: Self.leafHash(UnsafeRawBufferPointer(rebasing: raw[0..<filled])))
            }
            if filled < blockSize { break }
        }
        self.init(blockSize: blockSize, length: length, leaves: leaves)
    }

    private init(blockSize: Int, length: Int, leaves: [UInt8]) {
        self.blockSize = blockSize
        self.length = length
        self.blockCount = leaves.count / Self.hashLength
        var levels = [leaves]
        var current = leaves
        while current.count > Self.hashLength {
            let count = current.count / Self.hashLength
            var next: [UInt8] = []
            next.reserveCapacity((count + 1) / 2 * Self.hashLength)
            var index = 0
            while index + 1 < count {
                let left = current[(index * Self.hashLength)..<((index + 1) * Self.hashLength)]
                let right = current[((index + 1) * Self.hashLength)..<((index + 2) * Self.hashLength)]
                next.append(contentsOf: Self.nodeHash(left, right))
                index += 2
            }
            if index < count {  // a lone last node is carried up unchanged
                next.append(contentsOf: current[(index * Self.hashLength)...])
            }
            levels.append(next)
            current = next
        }
        self.levels = levels
    }

    /// The Merkle root (32 bytes). SHA-256 of the empty string for an empty image.
    public var merkleRoot: [UInt8] {
        if blockCount == 0 { return Digest.sha256([UInt8]()) }
        return levels[levels.count - 1]
    }

    /// The Merkle root as lowercase hex, as written into the targets metadata (`custom.merkle_root`).
    public var merkleRootHex: String { Digest.hex(merkleRoot) }

    /// The leaf hashes of all blocks, in order.
    public var leafHashes: [[UInt8]] {
        (0..<blockCount).map { Array(levels[0][($0 * Self.hashLength)..<(($0 + 1) * Self.hashLength)]) }
    }

    /// The leaf hash of block `index` (32 bytes); empty for an out-of-range index.
    public func leafHash(ofBlock index: Int) -> ArraySlice<UInt8> {
        guard index >= 0, index < blockCount else { return [] }
        return levels[0][(index * Self.hashLength)..<((index + 1) * Self.hashLength)]
    }

    /// The byte range of block `index` within the image (the last block may be short).
    public func byteRange(ofBlock index: Int) -> Range<Int> {
        Self.byteRange(ofBlock: index, length: length, blockSize: blockSize)
    }

    /// The audit path of block `index`: the sibling hashes from the leaf level up, skipping levels where the node
    /// has no sibling (a lone last node). At most 32 entries. Empty for an out-of-range index or a one-block image.
    public func proof(forBlock index: Int) -> [[UInt8]] {
        guard index >= 0, index < blockCount else { return [] }
        var path: [[UInt8]] = []
        var position = index
        for level in levels.dropLast() {
            let count = level.count / Self.hashLength
            let isLoneLast = position == count - 1 && count % 2 == 1
            if !isLoneLast {
                let sibling = position ^ 1
                path.append(Array(level[(sibling * Self.hashLength)..<((sibling + 1) * Self.hashLength)]))
            }
            position /= 2
        }
        return path
    }

    /// Verifies one block on its own: its length must be exactly the length of block `index` of an image of
    /// `length` bytes in blocks of `blockSize`, and its leaf hash, combined with `proof`, must give `root`.
    /// `proof` must have exactly the entries that ``proof(forBlock:)`` produces, no more and no fewer.
    /// - Parameter blockCount: must equal ⌈length / blockSize⌉ (it is passed explicitly so that callers holding it
    ///   from signed metadata get a cross-check).
    public static func verify(
        block: [UInt8], index: Int, proof: [[UInt8]], root: [UInt8], blockCount: Int, length: Int, blockSize: Int
    ) -> Bool {
        block.withUnsafeBytes { raw in
            verify(block: raw, index: index, proof: proof, root: root, blockCount: blockCount, length: length, blockSize: blockSize)
        }
    }

    /// Verifies one block held in a raw buffer (no copy); see ``verify(block:index:proof:root:blockCount:length:blockSize:)``.
    public static func verify(
        block: UnsafeRawBufferPointer, index: Int, proof: [[UInt8]], root: [UInt8], blockCount: Int, length: Int, blockSize: Int
    ) -> Bool {
        guard isValid(blockSize: blockSize), length > 0, root.count == hashLength,
              blockCount == (length + blockSize - 1) / blockSize, blockCount <= maximumBlockCount,
              index >= 0, index < blockCount,
              block.count == byteRange(ofBlock: index, length: length, blockSize: blockSize).count,
              proof.count <= 32, proof.allSatisfy({ $0.count == hashLength })
        else { return false }
        var hash = leafHash(block)
        var position = index
        var count = blockCount
        var used = 0
        while count > 1 {
            let isLoneLast = position == count - 1 && count % 2 == 1
            if !isLoneLast {
                guard used < proof.count else { return false }
                let sibling = proof[used]
                used += 1
                hash = position % 2 == 0 ? nodeHash(hash[...], sibling[...]) : nodeHash(sibling[...], hash[...])
            }
            position /= 2
            count = (count + 1) / 2
        }
        guard used == proof.count else { return false }
        return Digest.constantTimeEqual(hash, root)
    }

    /// The byte range of block `index` of an image of `length` bytes in blocks of `blockSize` (empty if out of range).
    public static func byteRange(ofBlock index: Int, length: Int, blockSize: Int) -> Range<Int> {
        guard blockSize > 0, index >= 0 else { return 0..<0 }
        let start = index.multipliedReportingOverflow(by: blockSize)
        guard !start.overflow, start.partialValue < length else { return 0..<0 }
        return start.partialValue..<min(start.partialValue + blockSize, length)
    }

    /// True if `blockSize` is a power of two in 4 KiB…64 KiB.
    public static func isValid(blockSize: Int) -> Bool {
        blockSize >= minimumBlockSize && blockSize <= maximumBlockSize && blockSize & (blockSize - 1) == 0
    }

    /// Throws `.badInput` unless `blockSize` is a power of two in 4 KiB…64 KiB.
    public static func validate(blockSize: Int) throws {
        guard isValid(blockSize: blockSize) else {
            throw WardenError.badInput(
                "block size \(blockSize) is not a power of two between \(minimumBlockSize) and \(maximumBlockSize) bytes")
        }
    }

    /// SHA-256(0x00 ‖ block): the leaf hash of one block.
    public static func leafHash(_ block: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = IncrementalSHA256()
        hasher.update(byte: 0x00)
        hasher.update(block)
        return hasher.finalize()
    }

    /// SHA-256(0x01 ‖ left ‖ right): the hash of an interior node.
    public static func nodeHash(_ left: ArraySlice<UInt8>, _ right: ArraySlice<UInt8>) -> [UInt8] {
        var hasher = IncrementalSHA256()
        hasher.update(byte: 0x01)
        hasher.update(left)
        hasher.update(right)
        return hasher.finalize()
    }
}
