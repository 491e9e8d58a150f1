import WardenCore
import WardenPKI

/// The binary messages of OTA block delivery over MQTT, version 1. `firmware/OTA-PROTOCOL.md` is the normative
/// description; this file is its only implementation, shared by the authority's block service and the agent.
///
/// All integers are big-endian. Every field has a size limit, decoding refuses unknown versions, unknown types,
/// out-of-range values and trailing bytes, and never allocates more than the message it was given.
public enum OTAWire {
    /// The protocol version byte that starts every message.
    public static let version: UInt8 = 1

    /// Message types (byte 1 of every message).
    public enum MessageType: UInt8, Sendable {
        /// A device's block request (`d/<id>/up/ota/get`).
        case request = 0x01
        /// One block with its Merkle proof (`d/<id>/down/ota/block`).
        case block = 0x02
        /// A status answer to a request (`d/<id>/down/ota/block`).
        case status = 0x03
    }

    /// Longest target name in a name@version reference, in UTF-8 bytes.
    public static let maximumNameLength = 128
    /// Longest target version in a name@version reference, in UTF-8 bytes.
    public static let maximumVersionLength = 64
    /// Most block ranges in one request.
    public static let maximumRanges = 32
    /// Most bits (blocks) in one request bitmap: 131,072 (16 KiB of bitmap).
    public static let maximumBitmapBits = 131_072
    /// Largest valid request, in bytes: header, the longest reference and the largest bitmap.
    public static let maximumRequestSize = 12 + (2 + maximumNameLength + maximumVersionLength) + 1 + 8 + maximumBitmapBits / 8
    /// Most proof entries in a block message (a tree over at most 2^32 blocks).
    public static let maximumProofEntries = 32
    /// Size of a block message's header without the proof.
    public static let blockHeaderSize = 52
    /// Size of a status message.
    public static let statusSize = 51
    /// Largest valid block message: header, the longest proof and the largest block.
    public static let maximumBlockMessageSize = blockHeaderSize + maximumProofEntries * 32 + BlockIndex.maximumBlockSize

    /// How a request names the image.
    public enum TargetReference: Sendable, Hashable, CustomStringConvertible {
        /// By the SHA-256 of the whole image (the `hashes.sha256` of the TUF target), 32 bytes.
        case sha256([UInt8])
        /// By target name and version, resolved by the authority to the image it assigned.
        case nameVersion(name: String, version: String)

        public var description: String {
            switch self {
            case .sha256(let hash): return "sha256:" + String(Digest.hex(hash).prefix(16)) + "…"
            case .nameVersion(let name, let version): return "\(name)@\(version)"
            }
        }
    }

    /// Which blocks a request asks for.
    public enum Selection: Sendable, Hashable {
        /// Ranges of blocks, each `first ..< first + count`; 1…32 ranges, each count ≥ 1.
        case ranges([Range<UInt32>])
        /// A bitmap of wanted blocks starting at block `first`: bit `i` (MSB first within each byte) set means block
        /// `first + i` is wanted. 1…131,072 bits; the padding bits of the last byte must be zero.
        case bitmap(first: UInt32, bitCount: UInt32, bits: [UInt8])

        /// The wanted block indexes in increasing order, without duplicates, at most `limit` of them.
        public func blocks(limit: Int) -> [UInt32] {
            var out: [UInt32] = []
            switch self {
            case .ranges(let ranges):
                var seen = Set<UInt32>()
                for range in ranges {
                    for index in range where seen.insert(index).inserted {
                        out.append(index)
                        if out.count >= limit { return out.sorted() }
                    }
                }
                return out.sorted()
            case .bitmap(let first, let bitCount, let bits):
                for bit in 0..<Int(bitCount) where bits[bit >> 3] & (0x80 >> UInt8(bit & 7)) != 0 {
                    out.append(first + UInt32(bit))
                    if out.count >= limit { break }
                }
                return out
            }
        }

        /// One past the highest block index the selection names (0 if none).
        public var upperBound: UInt64 {
            switch self {
            case .ranges(let ranges): return ranges.map { UInt64($0.upperBound) }.max() ?? 0
            case .bitmap(let first, let bitCount, _): return UInt64(first) + UInt64(bitCount)
            }
        }
    }

    /// A device's request for blocks of one image.
    public struct BlockRequest: Sendable, Hashable {
        /// Chosen by the device, echoed in every answer so it can drop answers to requests it abandoned.
        public var requestID: UInt64
        /// The image.
        public var target: TargetReference
        /// The block size the device verifies with (from the signed `custom.block_size`).
        public var blockSize: Int
        /// The wanted blocks.
        public var selection: Selection

        /// Creates a request.
        public init(requestID: UInt64, target: TargetReference, blockSize: Int, selection: Selection) {
            self.requestID = requestID
            self.target = target
            self.blockSize = blockSize
            self.selection = selection
        }

        /// The encoded message.
        /// - Throws: ``WardenError`` `.badInput` if a field is outside its limits (the same checks as decoding).
        public func encoded() throws -> [UInt8] {
            var writer = Writer(capacity: 64)
            writer.u8(OTAWire.version)
            writer.u8(MessageType.request.rawValue)
            writer.u64(requestID)
            writer.u8(try OTAWire.exponent(of: blockSize))
            switch target {
            case .sha256(let hash):
                guard hash.count == 32 else { throw WardenError.badInput("OTA request target hash must be 32 bytes") }
                writer.u8(1)
                writer.bytes(hash)
            case .nameVersion(let name, let version):
                let nameBytes = Array(name.utf8), versionBytes = Array(version.utf8)
                guard (1...maximumNameLength).contains(nameBytes.count), (1...maximumVersionLength).contains(versionBytes.count) else {
                    throw WardenError.badInput("OTA request target name or version is empty or too long")
                }
                writer.u8(2)
                writer.u8(UInt8(nameBytes.count))
                writer.bytes(nameBytes)
                writer.u8(UInt8(versionBytes.count))
                writer.bytes(versionBytes)
            }
            switch selection {
            case .ranges(let ranges):
                guard (1...maximumRanges).contains(ranges.count), ranges.allSatisfy({ !$0.isEmpty }) else {
                    throw WardenError.badInput("OTA request must hold 1 to \(maximumRanges) non-empty block ranges")
                }
                writer.u8(1)
                writer.u8(UInt8(ranges.count))
                for range in ranges {
                    writer.u32(range.lowerBound)
                    writer.u32(range.upperBound - range.lowerBound)
                }
            case .bitmap(let first, let bitCount, let bits):
                guard (1...UInt32(maximumBitmapBits)).contains(bitCount), bits.count == (Int(bitCount) + 7) / 8,
                      UInt64(first) + UInt64(bitCount) <= UInt64(UInt32.max) + 1
                else { throw WardenError.badInput("OTA request bitmap must hold 1 to \(maximumBitmapBits) bits") }
                writer.u8(2)
                writer.u32(first)
                writer.u32(bitCount)
                var padded = bits
                if bitCount % 8 != 0 { padded[padded.count - 1] &= ~(0xFF >> UInt8(bitCount % 8)) }
                writer.bytes(padded)
            }
            return writer.output
        }

        /// Decodes a request, strictly.
        /// - Throws: ``WardenError`` `.badInput` naming the first field at fault.
        public init(decoding message: [UInt8]) throws {
            guard message.count <= OTAWire.maximumRequestSize else {
                throw WardenError.badInput("OTA request of \(message.count) bytes exceeds the \(OTAWire.maximumRequestSize)-byte limit")
            }
            var reader = Reader(message, what: "OTA request")
            try reader.expectHeader(.request)
            requestID = try reader.u64()
            blockSize = try OTAWire.blockSize(exponent: reader.u8())
            switch try reader.u8() {
            case 1:
                target = .sha256(try reader.bytes(32))
            case 2:
                let nameLength = Int(try reader.u8())
                guard (1...OTAWire.maximumNameLength).contains(nameLength) else { throw reader.fail("target name length") }
                guard let name = String(validating: try reader.bytes(nameLength), as: UTF8.self) else { throw reader.fail("target name (not UTF-8)") }
                let versionLength = Int(try reader.u8())
                guard (1...OTAWire.maximumVersionLength).contains(versionLength) else { throw reader.fail("target version length") }
                guard let version = String(validating: try reader.bytes(versionLength), as: UTF8.self) else { throw reader.fail("target version (not UTF-8)") }
                target = .nameVersion(name: name, version: version)
            default:
                throw reader.fail("target reference kind")
            }
            switch try reader.u8() {
            case 1:
                let count = Int(try reader.u8())
                guard (1...OTAWire.maximumRanges).contains(count) else { throw reader.fail("range count") }
                var ranges: [Range<UInt32>] = []
                for _ in 0..<count {
                    let first = try reader.u32(), length = try reader.u32()
                    guard length >= 1, UInt64(first) + UInt64(length) <= UInt64(UInt32.max) else { throw reader.fail("block range") }
                    ranges.append(first..<(first + length))
                }
                selection = .ranges(ranges)
            case 2:
                let first = try reader.u32(), bitCount = try reader.u32()
                guard (1...UInt32(OTAWire.maximumBitmapBits)).contains(bitCount),
                      UInt64(first) + UInt64(bitCount) <= UInt64(UInt32.max)
                else { throw reader.fail("bitmap size") }
                let bits = try reader.bytes((Int(bitCount) + 7) / 8)
                if bitCount % 8 != 0, bits[bits.count - 1] & (0xFF >> UInt8(bitCount % 8)) != 0 {
                    throw reader.fail("bitmap padding bits")
                }
                selection = .bitmap(first: first, bitCount: bitCount, bits: bits)
            default:
                throw reader.fail("selection kind")
            }
            try reader.expectEnd()
        }
    }

    /// The fixed fields of a block message; the proof and the block bytes follow them.
    public struct BlockHeader: Sendable, Hashable {
        /// The request this block answers.
        public var requestID: UInt64
        /// SHA-256 of the whole image.
        public var targetSHA256: [UInt8]
        /// The block size of the index the proof belongs to.
        public var blockSize: Int
        /// The block's index.
        public var blockIndex: UInt32
        /// The number of blocks of the image (informative: receivers take it from the signed length).
        public var blockCount: UInt32

        /// Creates a header.
        public init(requestID: UInt64, targetSHA256: [UInt8], blockSize: Int, blockIndex: UInt32, blockCount: UInt32) {
            self.requestID = requestID
            self.targetSHA256 = targetSHA256
            self.blockSize = blockSize
            self.blockIndex = blockIndex
            self.blockCount = blockCount
        }
    }

    /// One block with the Merkle proof that lets it verify on its own.
    public struct BlockMessage: Sendable, Hashable {
        /// The fixed fields.
        public var header: BlockHeader
        /// The audit path (``BlockIndex/proof(forBlock:)``), 0…32 entries of 32 bytes.
        public var proof: [[UInt8]]
        /// The block bytes (1…block size).
        public var data: [UInt8]

        /// Creates a block message.
        public init(header: BlockHeader, proof: [[UInt8]], data: [UInt8]) {
            self.header = header
            self.proof = proof
            self.data = data
        }

        /// Encodes header, proof and block bytes into one payload, copying the block once.
        /// - Throws: ``WardenError`` `.badInput` if a field is outside its limits.
        public static func encode(header: BlockHeader, proof: [[UInt8]], data: UnsafeRawBufferPointer) throws -> [UInt8] {
            guard header.targetSHA256.count == 32, proof.count <= maximumProofEntries, proof.allSatisfy({ $0.count == 32 }),
                  (1...header.blockSize).contains(data.count)
            else { throw WardenError.badInput("OTA block message field out of range") }
            var writer = Writer(capacity: blockHeaderSize + proof.count * 32 + data.count)
            writer.u8(OTAWire.version)
            writer.u8(MessageType.block.rawValue)
            writer.u64(header.requestID)
            writer.bytes(header.targetSHA256)
            writer.u8(try OTAWire.exponent(of: header.blockSize))
            writer.u32(header.blockIndex)
            writer.u32(header.blockCount)
            writer.u8(UInt8(proof.count))
            for entry in proof { writer.bytes(entry) }
            writer.output.append(contentsOf: data)
            return writer.output
        }

        /// The encoded message.
        public func encoded() throws -> [UInt8] {
            try data.withUnsafeBytes { try Self.encode(header: header, proof: proof, data: $0) }
        }
    }

    /// Outcome codes of a status message.
    public enum StatusCode: UInt8, Sendable, CaseIterable {
        /// All blocks the service will send for this request have been published; `count` says how many.
        /// Ask again (with a fresh bitmap) for any still missing.
        case done = 0
        /// No image with that hash (or name@version) is available.
        case notFound = 1
        /// The device may not fetch this image (not active, or not assigned this target).
        case forbidden = 2
        /// Too many requests: wait `retryAfterMilliseconds` before asking again.
        case rateLimited = 3
        /// The request did not parse or names blocks outside the image.
        case badRequest = 4
        /// The stored image failed its own integrity check; the service will not serve it.
        case unavailable = 5
        /// The service is at capacity: wait `retryAfterMilliseconds`.
        case busy = 6
    }

    /// A status answer to a request.
    public struct StatusMessage: Sendable, Hashable {
        /// The request answered (0 if the request could not be parsed).
        public var requestID: UInt64
        /// The image (32 zero bytes if unknown).
        public var targetSHA256: [UInt8]
        /// The outcome.
        public var code: StatusCode
        /// For ``StatusCode/done``: blocks published for the request.
        public var count: UInt32
        /// For ``StatusCode/rateLimited`` and ``StatusCode/busy``: how long to wait.
        public var retryAfterMilliseconds: UInt32

        /// Creates a status message.
        public init(requestID: UInt64, targetSHA256: [UInt8]?, code: StatusCode, count: UInt32 = 0, retryAfterMilliseconds: UInt32 = 0) {
            self.requestID = requestID
            self.targetSHA256 = targetSHA256 ?? [UInt8](repeating: 0, count: 32)
            self.code = code
            self.count = count
            self.retryAfterMilliseconds = retryAfterMilliseconds
        }

        /// The encoded message (exactly ``OTAWire/statusSize`` bytes).
        public func encoded() -> [UInt8] {
            var writer = Writer(capacity: statusSize)
            writer.u8(OTAWire.version)
            writer.u8(MessageType.status.rawValue)
            writer.u64(requestID)
            writer.bytes(targetSHA256.count == 32 ? targetSHA256 : [UInt8](repeating: 0, count: 32))
            writer.u8(code.rawValue)
            writer.u32(count)
            writer.u32(retryAfterMilliseconds)
            return writer.output
        }
    }

    /// A message on `d/<id>/down/ota/block`.
    public enum Response: Sendable, Hashable {
        /// One block.
        case block(BlockMessage)
        /// A status answer.
        case status(StatusMessage)

        /// Decodes a message received on the block topic, strictly.
        /// - Throws: ``WardenError`` `.badInput` naming the first field at fault.
        public init(decoding message: [UInt8]) throws {
            guard message.count <= OTAWire.maximumBlockMessageSize else {
                throw WardenError.badInput("OTA block message of \(message.count) bytes exceeds the \(OTAWire.maximumBlockMessageSize)-byte limit")
            }
            var reader = Reader(message, what: "OTA block message")
            guard message.count >= 2, message[0] == OTAWire.version else { throw reader.fail("version") }
            switch MessageType(rawValue: message[1]) {
            case .block:
                try reader.expectHeader(.block)
                let requestID = try reader.u64()
                let hash = try reader.bytes(32)
                let blockSize = try OTAWire.blockSize(exponent: reader.u8())
                let index = try reader.u32(), count = try reader.u32()
                guard count >= 1, index < count else { throw reader.fail("block index") }
                let entries = Int(try reader.u8())
                guard entries <= OTAWire.maximumProofEntries else { throw reader.fail("proof length") }
                var proof: [[UInt8]] = []
                proof.reserveCapacity(entries)
                for _ in 0..<entries { proof.append(try reader.bytes(32)) }
                let data = reader.rest()
                guard (1...blockSize).contains(data.count) else { throw reader.fail("block length") }
                self = .block(BlockMessage(
                    header: BlockHeader(requestID: requestID, targetSHA256: hash, blockSize: blockSize, blockIndex: index, blockCount: count),
                    proof: proof, data: data))
            case .status:
                try reader.expectHeader(.status)
                let requestID = try reader.u64()
                let hash = try reader.bytes(32)
                guard let code = StatusCode(rawValue: try reader.u8()) else { throw reader.fail("status code") }
                let count = try reader.u32(), retry = try reader.u32()
                try reader.expectEnd()
                self = .status(StatusMessage(requestID: requestID, targetSHA256: hash, code: code, count: count, retryAfterMilliseconds: retry))
            default:
                throw reader.fail("message type")
            }
        }
    }

    /// The exponent byte for a block size (12…16).
    static func exponent(of blockSize: Int) throws -> UInt8 {
        try BlockIndex.validate(blockSize: blockSize)
        return UInt8(blockSize.trailingZeroBitCount)
    }

    /// The block size for an exponent byte.
    static func blockSize(exponent: UInt8) throws -> Int {
        guard (12...16).contains(exponent) else { throw WardenError.badInput("OTA message block size exponent \(exponent) is not 12 to 16") }
        return 1 << Int(exponent)
    }

    /// Appends big-endian fields.
    struct Writer {
        var output: [UInt8] = []
        init(capacity: Int) { output.reserveCapacity(capacity) }
        mutating func u8(_ value: UInt8) { output.append(value) }
        mutating func u32(_ value: UInt32) { for shift in stride(from: 24, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }
        mutating func u64(_ value: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        mutating func bytes(_ value: [UInt8]) { output.append(contentsOf: value) }
    }

    /// Reads big-endian fields, refusing to read past the end.
    struct Reader {
        let message: [UInt8]
        let what: String
        var offset = 0
        init(_ message: [UInt8], what: String) {
            self.message = message
            self.what = what
        }
        func fail(_ field: String) -> WardenError { WardenError.badInput("\(what) has an invalid \(field) at byte \(offset)") }
        mutating func u8() throws -> UInt8 {
            guard offset < message.count else { throw WardenError.badInput("\(what) is truncated at byte \(offset)") }
            defer { offset += 1 }
            return message[offset]
        }
        mutating func u32() throws -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 { value = value << 8 | UInt32(try u8()) }
            return value
        }
        mutating func u64() throws -> UInt64 {
            var value: UInt64 = 0
            for _ in 0..<8 { value = value << 8 | UInt64(try u8()) }
            return value
        }
        mutating func bytes(_ count: Int) throws -> [UInt8] {
            guard count >= 0, message.count - offset >= count else { throw WardenError.badInput("\(what) is truncated at byte \(offset)") }
            defer { offset += count }
            return Array(message[offset..<(offset + count)])
        }
        mutating func rest() -> [UInt8] {
            defer { offset = message.count }
            return Array(message[offset...])
        }
        mutating func expectHeader(_ type: MessageType) throws {
            guard try u8() == OTAWire.version else { offset -= 1; throw fail("version") }
            guard try u8() == type.rawValue else { offset -= 1; throw fail("message type") }
        }
        func expectEnd() throws {
            guard offset == message.count else { throw WardenError.badInput("\(what) has \(message.count - offset) trailing bytes") }
        }
    }
}
