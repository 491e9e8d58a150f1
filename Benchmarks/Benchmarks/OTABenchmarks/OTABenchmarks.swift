import Benchmark
import Foundation
import WardenPKI
import WardenUpdate

/// OTA block delivery, CPU side (docs/PERFORMANCE.md "OTA block delivery"; the end-to-end goodput through Mosquitto
/// is scripts/bench-ota.sh):
/// - indexing a 16 MiB image (what `firmware add` and the block service's first request pay), 4 KiB and 64 KiB blocks;
/// - the service's per-block work: proof + message encoding for every block of the image;
/// - the device's per-block work: strict decoding + Merkle verification of every block of the image;
/// - the reference: one SHA-256 pass over the same 16 MiB (the floor any integrity check pays).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 1,
        maxDuration: .seconds(15),
        maxIterations: 20
    )
    var generator = SystemRandomNumberGenerator()
    let image = (0..<(16 * 1024 * 1024)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let hash = Digest.sha256(image)

    Benchmark("Reference: SHA-256 of 16 MiB") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Digest.sha256(image)) }
    }

    for blockSize in [4096, 65536] {
        let index = try! BlockIndex(image: image, blockSize: blockSize)
        let target = try! BlockTarget(index: index, sha256: hash)
        let messages = (0..<index.blockCount).map { number -> [UInt8] in
            let header = OTAWire.BlockHeader(
                requestID: 1, targetSHA256: hash, blockSize: blockSize, blockIndex: UInt32(number), blockCount: UInt32(index.blockCount))
            return try! OTAWire.BlockMessage(header: header, proof: index.proof(forBlock: number), data: Array(image[index.byteRange(ofBlock: number)])).encoded()
        }
        let kib = blockSize / 1024

        Benchmark("Index 16 MiB, \(kib) KiB blocks (Merkle tree)") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try BlockIndex(image: image, blockSize: blockSize)) }
        }

        Benchmark("Service: proof + encode every block of 16 MiB, \(kib) KiB blocks") { benchmark in
            for _ in benchmark.scaledIterations {
                image.withUnsafeBytes { raw in
                    for number in 0..<index.blockCount {
                        let range = index.byteRange(ofBlock: number)
                        let header = OTAWire.BlockHeader(
                            requestID: 1, targetSHA256: hash, blockSize: blockSize, blockIndex: UInt32(number),
                            blockCount: UInt32(index.blockCount))
                        blackHole(try! OTAWire.BlockMessage.encode(
                            header: header, proof: index.proof(forBlock: number), data: UnsafeRawBufferPointer(rebasing: raw[range])))
                    }
                }
            }
        }

        Benchmark("Device: decode + verify every block of 16 MiB, \(kib) KiB blocks") { benchmark in
            for _ in benchmark.scaledIterations {
                for payload in messages {
                    guard case .block(let message) = try OTAWire.Response(decoding: payload),
                          BlockIndex.verify(
                            block: message.data, index: Int(message.header.blockIndex), proof: message.proof, root: target.merkleRoot,
                            blockCount: target.blockCount, length: target.length, blockSize: blockSize)
                    else { fatalError("a genuine block did not verify") }
                }
            }
        }
    }
}
