import Foundation
import Testing
import WardenCore
import WardenPKI
import WardenTestSupport
@testable import WardenUpdate

@Suite struct BlockDownloadTests {
    struct Fixture {
        let image: [UInt8]
        let index: BlockIndex
        let target: BlockTarget
        let directory: URL

        init(length: Int = 9 * 4096 + 123, blockSize: Int = 4096) throws {
            image = blockTestImage(length, seed: 42)
            index = try BlockIndex(image: image, blockSize: blockSize)
            target = try BlockTarget(index: index, sha256: Digest.sha256(image))
            directory = try OpenSSLOracle.makeTemporaryDirectory()
        }

        func message(_ number: Int, data: [UInt8]? = nil, proof: [[UInt8]]? = nil, hash: [UInt8]? = nil) -> OTAWire.BlockMessage {
            let range = index.byteRange(ofBlock: number)
            return OTAWire.BlockMessage(
                header: OTAWire.BlockHeader(
                    requestID: 1, targetSHA256: hash ?? target.sha256, blockSize: index.blockSize,
                    blockIndex: UInt32(number), blockCount: UInt32(index.blockCount)),
                proof: proof ?? index.proof(forBlock: number), data: data ?? Array(image[range]))
        }

        var destination: String { directory.appendingPathComponent("image.bin").path }
    }

    @Test func blocksInAnyOrderAssembleByteIdentical() throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let download = try BlockDownload(target: fixture.target, destination: fixture.destination)
        #expect(download.missingCount == 10)
        for number in [9, 0, 5, 3, 1, 2, 4, 8, 7, 6] {
            #expect(download.accept(fixture.message(number)) == .stored(index: number))
        }
        #expect(download.accept(fixture.message(4)) == .duplicate(index: 4))
        #expect(download.isComplete)
        #expect(download.request(requestID: 2) == nil)
        try download.finish()
        #expect(FileManager.default.contents(atPath: fixture.destination).map(Array.init) == fixture.image)
        #expect(!FileManager.default.fileExists(atPath: download.partPath))
        #expect(!FileManager.default.fileExists(atPath: download.statePath))
    }

    @Test("unproven blocks (the HTTPS Range fallback): lengths are checked per block, and the whole-image SHA-256 at finish() discards a tampered one")
    func unprovenBlocksAreCheckedByTheWholeImageHash() throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let download = try BlockDownload(target: fixture.target, destination: fixture.destination)
        let last = fixture.index.blockCount - 1
        #expect(download.acceptUnproven(index: last, data: Array(fixture.image[fixture.index.byteRange(ofBlock: last)]) + [0])
            == .rejected(index: last, reason: "block \(last) has 124 bytes, not 123"))
        #expect(download.acceptUnproven(index: last + 1, data: []) == .rejected(index: nil, reason: "block index \(last + 1) is out of range"))
        for number in 0...last {
            var data = Array(fixture.image[fixture.index.byteRange(ofBlock: number)])
            if number == 3 { data[5] ^= 0x01 }
            #expect(download.acceptUnproven(index: number, data: data) == .stored(index: number))
        }
        #expect(download.acceptUnproven(index: 0, data: Array(fixture.image[fixture.index.byteRange(ofBlock: 0)])) == .duplicate(index: 0))
        #expect(throws: WardenError.self) { try download.finish() }
        #expect(!FileManager.default.fileExists(atPath: fixture.destination), "a tampered image never reaches its destination")
        #expect(download.missingCount == fixture.index.blockCount, "every unproven block is discarded")
        // Fetched again, correctly: the image completes byte-identical.
        for number in 0...last {
            _ = download.acceptUnproven(index: number, data: Array(fixture.image[fixture.index.byteRange(ofBlock: number)]))
        }
        try download.finish()
        #expect(FileManager.default.contents(atPath: fixture.destination).map(Array.init) == fixture.image)
    }

    @Test func aCorruptedBlockIsRejectedAtThatBlockAndNeverWritten() throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let download = try BlockDownload(target: fixture.target, destination: fixture.destination)
        var corrupted = Array(fixture.image[fixture.index.byteRange(ofBlock: 4)])
        corrupted[17] ^= 0x40
        guard case .rejected(let index, _) = download.accept(fixture.message(4, data: corrupted)) else {
            Issue.record("a corrupted block was accepted")
            return
        }
        #expect(index == 4)
        #expect(download.isMissing(4))
        // Wrong proof, foreign image, block moved to another index, truncated last block.
        #expect(download.accept(fixture.message(4, proof: fixture.index.proof(forBlock: 5))) != .stored(index: 4))
        #expect(download.accept(fixture.message(4, hash: Digest.sha256([9]))) == .rejected(index: nil, reason: "block of another image"))
        var moved = fixture.message(5)
        moved.header.blockIndex = 4
        #expect(download.accept(moved) != .stored(index: 4))
        #expect(download.accept(fixture.message(9, data: Array(fixture.image[(9 * 4096)...].dropLast()))) != .stored(index: 9))
        #expect(download.receivedCount == 0)
        // The genuine block is then accepted.
        #expect(download.accept(fixture.message(4)) == .stored(index: 4))
        // Garbage payloads are rejections, status messages are not blocks.
        guard case .rejected(nil, _)? = download.accept(payload: [1, 2, 3]) else {
            Issue.record("a garbage payload was not rejected")
            return
        }
        #expect(download.accept(payload: OTAWire.StatusMessage(requestID: 1, targetSHA256: nil, code: .done).encoded()) == nil)
    }

    @Test func missingBitmapNamesExactlyTheMissingBlocks() throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let download = try BlockDownload(target: fixture.target, destination: fixture.destination)
        for number in [0, 1, 3, 6, 9] { _ = download.accept(fixture.message(number)) }
        let request = try #require(download.request(requestID: 77))
        let decoded = try OTAWire.BlockRequest(decoding: try request.encoded())
        #expect(decoded.requestID == 77)
        #expect(decoded.target == .sha256(fixture.target.sha256))
        #expect(decoded.selection.blocks(limit: 100) == [2, 4, 5, 7, 8])
        #expect(download.missingSelection(maxBits: 2)?.blocks(limit: 100) == [2])
    }

    @Test func checkpointedDownloadsResumeAndStaleStateIsDiscarded() throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        do {
            let first = try BlockDownload(target: fixture.target, destination: fixture.destination, checkpointInterval: 0)
            for number in 0..<5 { _ = first.accept(fixture.message(number)) }
            try first.checkpoint()
            _ = first.accept(fixture.message(5))  // not checkpointed: lost on "crash"
        }
        let resumed = try BlockDownload(target: fixture.target, destination: fixture.destination)
        #expect(resumed.receivedCount == 5)
        #expect(resumed.missingSelection()?.blocks(limit: 100) == [5, 6, 7, 8, 9])
        for number in 5..<10 { _ = resumed.accept(fixture.message(number)) }
        try resumed.finish()
        #expect(FileManager.default.contents(atPath: fixture.destination).map(Array.init) == fixture.image)

        // A state file for another target is ignored: the download starts empty.
        let other = try Fixture(length: 3 * 4096)
        defer { try? FileManager.default.removeItem(at: other.directory) }
        let stale = try BlockDownload(target: other.target, destination: fixture.destination + "2", checkpointInterval: 0)
        _ = stale.accept(other.message(0))
        try stale.checkpoint()
        let fresh = try BlockDownload(target: fixture.target, destination: fixture.destination + "2")
        #expect(fresh.receivedCount == 0)
    }

    @Test func finishRefusesIncompleteOrTamperedPartFiles() throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let download = try BlockDownload(target: fixture.target, destination: fixture.destination, checkpointInterval: 0)
        for number in 0..<9 { _ = download.accept(fixture.message(number)) }
        #expect(throws: WardenError.badInput("")) { try download.finish() }
        _ = download.accept(fixture.message(9))
        // Someone overwrites a byte of the part file behind the downloader's back.
        let handle = try #require(FileHandle(forWritingAtPath: download.partPath))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data([fixture.image[100] ^ 0xFF]))
        try handle.close()
        #expect(throws: WardenError.badInput("")) { try download.finish() }
        #expect(!FileManager.default.fileExists(atPath: fixture.destination))
        #expect(download.receivedCount == 0)
    }

    @Test func targetsRefuseBadDescriptions() {
        let hash = Digest.sha256([1])
        #expect(throws: WardenError.badInput("")) { try BlockTarget(sha256: hash, length: 0, blockSize: 4096, merkleRoot: hash) }
        #expect(throws: WardenError.badInput("")) { try BlockTarget(sha256: [1], length: 10, blockSize: 4096, merkleRoot: hash) }
        #expect(throws: WardenError.badInput("")) { try BlockTarget(sha256: hash, length: 10, blockSize: 5000, merkleRoot: hash) }
    }
}
