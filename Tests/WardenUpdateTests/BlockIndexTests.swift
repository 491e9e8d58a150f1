import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport
@testable import WardenUpdate

/// Deterministic pseudo-random image bytes (xorshift), so failures reproduce.
func blockTestImage(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var out = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        out[index] = UInt8(truncatingIfNeeded: state)
    }
    return out
}

/// RFC 9162 §2.1.1 MTH, written recursively and independently of BlockIndex's bottom-up build.
private func referenceRoot(_ blocks: [[UInt8]]) -> [UInt8] {
    if blocks.isEmpty { return Digest.sha256([UInt8]()) }
    if blocks.count == 1 { return Digest.sha256([0x00] + blocks[0]) }
    var k = 1
    while k * 2 < blocks.count { k *= 2 }
    return Digest.sha256([0x01] + referenceRoot(Array(blocks[..<k])) + referenceRoot(Array(blocks[k...])))
}

private func split(_ image: [UInt8], _ blockSize: Int) -> [[UInt8]] {
    stride(from: 0, to: image.count, by: blockSize).map { Array(image[$0..<min($0 + blockSize, image.count)]) }
}

@Suite struct BlockIndexTests {
    static let size = 4096

    @Test(arguments: [1, 4096, 4097, 2 * 4096, 3 * 4096, 5 * 4096 - 1, 7 * 4096 + 13, 8 * 4096, 9 * 4096 + 1, 17 * 4096 + 4095])
    func rootMatchesRFC9162AndEveryBlockVerifies(length: Int) throws {
        let image = blockTestImage(length)
        let index = try BlockIndex(image: image, blockSize: Self.size)
        let blocks = split(image, Self.size)
        #expect(index.blockCount == blocks.count)
        #expect(index.length == length)
        #expect(index.merkleRoot == referenceRoot(blocks))
        #expect(index.merkleRootHex == Digest.hex(referenceRoot(blocks)))
        for (number, block) in blocks.enumerated() {
            let proof = index.proof(forBlock: number)
            #expect(proof.count <= 32)
            #expect(BlockIndex.verify(
                block: block, index: number, proof: proof, root: index.merkleRoot,
                blockCount: index.blockCount, length: length, blockSize: Self.size))
            #expect(index.byteRange(ofBlock: number).count == block.count)
        }
    }

    @Test func singleBlockRootIsTheLeafHash() throws {
        let image = Array("firmware".utf8)
        let index = try BlockIndex(image: image, blockSize: 4096)
        #expect(index.merkleRoot == Digest.sha256([0x00] + image))
        #expect(index.proof(forBlock: 0).isEmpty)
        // A known-answer vector from an independent oracle: openssl dgst -sha256 of 0x00 ‖ "firmware".
        #expect(index.merkleRootHex == (try #require(Self.shellSHA256(of: [0x00] + image))))
    }

    @Test func emptyImageHasNoBlocks() throws {
        let index = try BlockIndex(image: [], blockSize: 4096)
        #expect(index.blockCount == 0)
        #expect(index.merkleRoot == Digest.sha256([UInt8]()))
        #expect(index.proof(forBlock: 0).isEmpty)
        #expect(!BlockIndex.verify(block: [], index: 0, proof: [], root: index.merkleRoot, blockCount: 0, length: 0, blockSize: 4096))
    }

    @Test(arguments: [0, 1, 1000, 4095, 4096 + 1, 3 * 4096, 128 * 1024, -4096])
    func badBlockSizesAreRefused(blockSize: Int) {
        #expect(throws: WardenError.badInput("")) { try BlockIndex(image: [1, 2, 3], blockSize: blockSize) }
    }

    @Test(arguments: [4096, 8192, 16384, 32768, 65536])
    func allPowerOfTwoSizesWork(blockSize: Int) throws {
        let image = blockTestImage(3 * blockSize + 7)
        let index = try BlockIndex(image: image, blockSize: blockSize)
        #expect(index.blockCount == 4)
        #expect(index.merkleRoot == referenceRoot(split(image, blockSize)))
    }

    @Test func tamperedBlockWrongIndexAndWrongProofAreRefused() throws {
        let length = 7 * 4096 + 100
        let image = blockTestImage(length)
        let index = try BlockIndex(image: image, blockSize: 4096)
        let blocks = split(image, 4096)
        let root = index.merkleRoot
        func check(_ block: [UInt8], _ number: Int, _ proof: [[UInt8]], root: [UInt8] = root, count: Int = 8, length: Int = length) -> Bool {
            BlockIndex.verify(block: block, index: number, proof: proof, root: root, blockCount: count, length: length, blockSize: 4096)
        }
        for number in 0..<blocks.count {
            let proof = index.proof(forBlock: number)
            #expect(check(blocks[number], number, proof))
            // One flipped bit anywhere in the block.
            var tampered = blocks[number]
            tampered[tampered.count / 2] ^= 0x01
            #expect(!check(tampered, number, proof))
            // The right block and proof under the wrong index.
            for other in 0..<blocks.count where other != number {
                #expect(!check(blocks[number], other, proof))
                #expect(!check(blocks[number], number, index.proof(forBlock: other)))
            }
            // A flipped bit in each proof entry; an extra entry; a missing entry.
            for entry in proof.indices {
                var bad = proof
                bad[entry][0] ^= 0x80
                #expect(!check(blocks[number], number, bad))
            }
            #expect(!check(blocks[number], number, proof + [Array(repeating: 0, count: 32)]))
            if !proof.isEmpty { #expect(!check(blocks[number], number, Array(proof.dropLast()))) }
            // A wrong root, a wrong block count, a wrong length.
            var badRoot = root
            badRoot[31] ^= 1
            #expect(!check(blocks[number], number, proof, root: badRoot))
            #expect(!check(blocks[number], number, proof, count: 9))
            #expect(!check(blocks[number], number, proof, length: length + 4096))
        }
        // Out-of-range indexes.
        #expect(!check(blocks[0], -1, index.proof(forBlock: 0)))
        #expect(!check(blocks[7], 8, index.proof(forBlock: 7)))
        #expect(index.proof(forBlock: 8).isEmpty)
        #expect(index.proof(forBlock: -1).isEmpty)
    }

    @Test func shortLastBlockMustHaveItsExactLength() throws {
        let length = 3 * 4096 + 100
        let image = blockTestImage(length)
        let index = try BlockIndex(image: image, blockSize: 4096)
        let last = Array(image[(3 * 4096)...])
        let proof = index.proof(forBlock: 3)
        func check(_ block: [UInt8]) -> Bool {
            BlockIndex.verify(block: block, index: 3, proof: proof, root: index.merkleRoot, blockCount: 4, length: length, blockSize: 4096)
        }
        #expect(last.count == 100)
        #expect(check(last))
        #expect(!check(last + [0]))                       // padded
        #expect(!check(Array(last.dropLast())))           // truncated
        #expect(!check(last + [UInt8](repeating: 0, count: 4096 - 100)))  // zero-padded to a full block
        // A full-size block (not the last) is refused at any shorter length.
        let first = Array(image[0..<4096])
        #expect(!BlockIndex.verify(block: Array(first.dropLast()), index: 0, proof: index.proof(forBlock: 0),
                                   root: index.merkleRoot, blockCount: 4, length: length, blockSize: 4096))
    }

    @Test func leafAndNodeHashesAreDomainSeparated() throws {
        // A two-block image's root must differ from the leaf hash of the concatenation of the two leaf hashes:
        // without the 0x00/0x01 prefixes an interior node could pass as a leaf (second-preimage).
        let image = blockTestImage(2 * 4096)
        let index = try BlockIndex(image: image, blockSize: 4096)
        let forged = index.leafHashes[0] + index.leafHashes[1]
        #expect(!BlockIndex.verify(block: forged, index: 0, proof: [], root: index.merkleRoot, blockCount: 1, length: 64, blockSize: 4096))
        #expect(index.merkleRoot == Digest.sha256([0x01] + index.leafHashes[0] + index.leafHashes[1]))
    }

    @Test(arguments: [0, 1, 4096, 65536 * 3 + 5])
    func fileAndMemoryIndexesAgree(length: Int) throws {
        let image = blockTestImage(length, seed: UInt64(length) + 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("blockindex-\(UUID().uuidString).bin").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(image).write(to: URL(fileURLWithPath: path))
        for blockSize in [4096, 65536] {
            let fromFile = try BlockIndex(contentsOf: path, blockSize: blockSize)
            let fromMemory = try BlockIndex(image: image, blockSize: blockSize)
            #expect(fromFile == fromMemory)
            #expect(fromFile.length == length)
        }
    }

    @Test func missingFileIsNotFound() {
        #expect(throws: WardenError.notFound("")) {
            try BlockIndex(contentsOf: "/nonexistent/warden-image.bin", blockSize: 4096)
        }
    }

    /// openssl as an independent SHA-256 oracle.
    static func shellSHA256(of bytes: [UInt8]) -> String? {
        guard let output = try? OpenSSLOracle.run(["dgst", "-sha256", "-r"], stdin: bytes), output.succeeded else { return nil }
        return output.stdout.split(separator: " ").first.map(String.init)
    }
}
