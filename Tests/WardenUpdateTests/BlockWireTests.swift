import Foundation
import Testing
import WardenCore
import WardenPKI
@testable import WardenUpdate

@Suite struct BlockWireTests {
    static let hash = Digest.sha256(Array("image".utf8))

    @Test func requestsRoundTripWithTheDocumentedLayout() throws {
        let request = OTAWire.BlockRequest(
            requestID: 0x0102_0304_0506_0708, target: .sha256(Self.hash), blockSize: 65536,
            selection: .ranges([0..<4, 10..<11]))
        let bytes = try request.encoded()
        // version, type, request id, exponent, reference kind, hash, selection kind, count, 2 × (first, count)
        #expect(bytes.count == 1 + 1 + 8 + 1 + 1 + 32 + 1 + 1 + 2 * 8)
        #expect(Array(bytes[0..<12]) == [1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 16, 1])
        #expect(Array(bytes[44...]) == [1, 2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 10, 0, 0, 0, 1])
        #expect(try OTAWire.BlockRequest(decoding: bytes) == request)

        let named = OTAWire.BlockRequest(
            requestID: 7, target: .nameVersion(name: "sensor-fw", version: "1.2.3"), blockSize: 4096,
            selection: .bitmap(first: 8, bitCount: 10, bits: [0b1010_0000, 0b0100_0000]))
        let decoded = try OTAWire.BlockRequest(decoding: try named.encoded())
        #expect(decoded == named)
        #expect(decoded.selection.blocks(limit: 100) == [8, 10, 17])
        #expect(decoded.selection.upperBound == 18)
    }

    @Test func blockAndStatusMessagesRoundTrip() throws {
        let header = OTAWire.BlockHeader(requestID: 9, targetSHA256: Self.hash, blockSize: 4096, blockIndex: 3, blockCount: 5)
        let message = OTAWire.BlockMessage(header: header, proof: [Self.hash, Digest.sha256([1])], data: [UInt8](repeating: 0xAB, count: 100))
        let bytes = try message.encoded()
        #expect(bytes.count == OTAWire.blockHeaderSize + 64 + 100)
        #expect(try OTAWire.Response(decoding: bytes) == .block(message))

        let status = OTAWire.StatusMessage(requestID: 9, targetSHA256: Self.hash, code: .rateLimited, count: 0, retryAfterMilliseconds: 1500)
        #expect(status.encoded().count == OTAWire.statusSize)
        #expect(try OTAWire.Response(decoding: status.encoded()) == .status(status))
    }

    /// Every prefix of a valid message is refused, and so is every message with a trailing byte.
    @Test func truncatedAndPaddedRequestsAreRefused() throws {
        let request = try OTAWire.BlockRequest(
            requestID: 1, target: .nameVersion(name: "fw", version: "1"), blockSize: 4096,
            selection: .bitmap(first: 0, bitCount: 9, bits: [0xFF, 0x80])).encoded()
        for cut in 0..<request.count {
            #expect(throws: WardenError.badInput("")) { try OTAWire.BlockRequest(decoding: Array(request[0..<cut])) }
        }
        #expect(throws: WardenError.badInput("")) { try OTAWire.BlockRequest(decoding: request + [0]) }
        let status = OTAWire.StatusMessage(requestID: 1, targetSHA256: nil, code: .done).encoded()
        for cut in 0..<status.count {
            #expect(throws: WardenError.badInput("")) { try OTAWire.Response(decoding: Array(status[0..<cut])) }
        }
        #expect(throws: WardenError.badInput("")) { try OTAWire.Response(decoding: status + [0]) }
    }

    @Test func malformedFieldsAreRefused() throws {
        let good = try OTAWire.BlockRequest(
            requestID: 1, target: .sha256(Self.hash), blockSize: 4096, selection: .ranges([0..<1])).encoded()
        func refused(_ mutate: (inout [UInt8]) -> Void) -> Bool {
            var bytes = good
            mutate(&bytes)
            return (try? OTAWire.BlockRequest(decoding: bytes)) == nil
        }
        #expect(refused { $0[0] = 2 })                 // version
        #expect(refused { $0[1] = 2 })                 // type
        #expect(refused { $0[10] = 11 })               // block size 2 KiB
        #expect(refused { $0[10] = 17 })               // block size 128 KiB
        #expect(refused { $0[11] = 3 })                // reference kind
        #expect(refused { $0[44] = 3 })                // selection kind
        #expect(refused { $0[45] = 0 })                // zero ranges
        #expect(refused { $0[45] = 33 })               // too many ranges
        #expect(refused { $0[53] = 0 })                // empty range (count 0)
        #expect(refused { $0.replaceSubrange(46..<50, with: [0xFF, 0xFF, 0xFF, 0xFF]) })  // range overflows UInt32
        // Bitmap: nonzero padding bits, zero bits, too many bits.
        let bitmap = try OTAWire.BlockRequest(
            requestID: 1, target: .sha256(Self.hash), blockSize: 4096, selection: .bitmap(first: 0, bitCount: 9, bits: [0, 0x80])).encoded()
        var padding = bitmap
        padding[padding.count - 1] |= 0x01
        #expect((try? OTAWire.BlockRequest(decoding: padding)) == nil)
        var zero = bitmap
        zero.replaceSubrange(49..<53, with: [0, 0, 0, 0])
        #expect((try? OTAWire.BlockRequest(decoding: zero)) == nil)
        var huge = bitmap
        huge.replaceSubrange(49..<53, with: [0, 2, 0, 1])
        #expect((try? OTAWire.BlockRequest(decoding: huge)) == nil)
        // Name: empty, not UTF-8; oversized message.
        #expect((try? OTAWire.BlockRequest(requestID: 1, target: .nameVersion(name: "", version: "1"), blockSize: 4096, selection: .ranges([0..<1])).encoded()) == nil)
        var named = try OTAWire.BlockRequest(requestID: 1, target: .nameVersion(name: "ab", version: "1"), blockSize: 4096, selection: .ranges([0..<1])).encoded()
        named[13] = 0xFF
        #expect((try? OTAWire.BlockRequest(decoding: named)) == nil)
        #expect((try? OTAWire.BlockRequest(decoding: good + [UInt8](repeating: 0, count: OTAWire.maximumRequestSize))) == nil)
    }

    @Test func malformedBlockMessagesAreRefused() throws {
        let header = OTAWire.BlockHeader(requestID: 1, targetSHA256: Self.hash, blockSize: 4096, blockIndex: 0, blockCount: 2)
        let good = try OTAWire.BlockMessage(header: header, proof: [Self.hash], data: [1, 2, 3]).encoded()
        #expect((try? OTAWire.Response(decoding: good)) != nil)
        var indexBeyondCount = good
        indexBeyondCount.replaceSubrange(43..<47, with: [0, 0, 0, 2])
        #expect((try? OTAWire.Response(decoding: indexBeyondCount)) == nil)
        var tooManyProofs = good
        tooManyProofs[51] = 33
        #expect((try? OTAWire.Response(decoding: tooManyProofs)) == nil)
        var proofEatsData = good
        proofEatsData[51] = 2  // the proof would swallow the block bytes
        #expect((try? OTAWire.Response(decoding: proofEatsData)) == nil)
        let empty = Array(good[0..<(OTAWire.blockHeaderSize + 32)])
        #expect((try? OTAWire.Response(decoding: empty)) == nil)  // no block bytes
        let oversized = try OTAWire.BlockMessage(header: header, proof: [], data: [UInt8](repeating: 0, count: 4096)).encoded() + [0]
        #expect((try? OTAWire.Response(decoding: oversized)) == nil)  // 4097 bytes for a 4 KiB block
        var badStatus = OTAWire.StatusMessage(requestID: 1, targetSHA256: nil, code: .done).encoded()
        badStatus[42] = 200
        #expect((try? OTAWire.Response(decoding: badStatus)) == nil)
        #expect((try? OTAWire.Response(decoding: [])) == nil)
        #expect((try? OTAWire.Response(decoding: [1, 1])) == nil)  // a request is not a response
    }

    @Test func topicsNameTheDevice() {
        #expect(OTATopics.request(device: "pump-17") == "d/pump-17/up/ota/get")
        #expect(OTATopics.blocks(device: "pump-17") == "d/pump-17/down/ota/block")
        #expect(OTATopics.device(in: "d/pump-17/up/ota/get", leaf: "get") == "pump-17")
        #expect(OTATopics.device(in: "d/pump-17/up/ota/status", leaf: "get") == nil)
        #expect(OTATopics.device(in: "d/warden-control/up/ota/get", leaf: "get") == nil)
        #expect(OTATopics.device(in: "d/Pump/up/ota/get", leaf: "get") == nil)
        #expect(OTATopics.device(in: "d/pump-17/up/ota/get/x", leaf: "get") == nil)
    }
}
