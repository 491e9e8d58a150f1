import Foundation
import Synchronization
import Testing
import WardenCore
import WardenPKI
import WardenStore
import WardenTestSupport

@testable import WardenAuthority

@Suite("batch enrollment pipeline")
struct BatchPipelineTests {
    /// A home with a CA (fast key derivation) and `count` CSRs `pipe-NNN`, plus a few bad rows; returns the rows.
    static func fleet(_ dir: TemporaryDirectory, count: Int) throws -> (home: WardenHome, rows: [BatchRow]) {
        let home = WardenHome(path: dir.file("home"))
        _ = try CAInitializer.initialize(
            layout: home.ca, organization: "Pipeline Fleet", rootValidity: try WardenDuration(parsing: "10y"),
            issuingValidity: try WardenDuration(parsing: "2y"), passphrase: passphrase, now: Date(), keyIterations: 1_000)
        var lines = ["id,csr_path"]
        for index in 0..<count {
            let id = String(format: "pipe-%03d", index)
            try DeviceKeys.make(id, in: dir)
            lines.append("\(id),\(id).csr")
            if index == 5 { lines.append("wrong-cn,pipe-000.csr") }
            if index == 17 { lines.append("no-file,missing.csr") }
        }
        let csv = try dir.write("batch.csv", lines.joined(separator: "\n") + "\n")
        return (home, try Authority.parseBatch(try SecureFile.read(csv), source: csv))
    }

    static let passphrase = Array("pipeline test passphrase".utf8)

    @Test("chunks: a short first and last chunk, the rest chunkSize, covering every row once")
    func boundaries() {
        #expect(BatchPipeline.chunkBoundaries(count: 2000, chunkSize: 256) == [0, 64, 320, 576, 832, 1088, 1344, 1600, 1856, 1936, 2000])
        #expect(BatchPipeline.chunkBoundaries(count: 10, chunkSize: 256) == [0, 10])
        #expect(BatchPipeline.chunkBoundaries(count: 100, chunkSize: 256) == [0, 64, 100])
        #expect(BatchPipeline.chunkBoundaries(count: 7, chunkSize: 3) == [0, 3, 4, 7])
        #expect(BatchPipeline.chunkBoundaries(count: 0, chunkSize: 256) == [0])
        for count in [1, 2, 63, 64, 65, 300, 1000] {
            for size in [1, 2, 5, 64, 256] {
                let bounds = BatchPipeline.chunkBoundaries(count: count, chunkSize: size)
                #expect(bounds.first == 0 && bounds.last == count)
                #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 && $1 - $0 <= size })
            }
        }
    }

    @Test("every row is reported once, in file order, chunk by chunk, whatever the jobs and chunk size", arguments: [(1, 4), (2, 7), (3, 256)])
    func orderAndOutcomes(jobs: Int, chunkSize: Int) throws {
        let dir = try TemporaryDirectory()
        let (home, rows) = try Self.fleet(dir, count: 30)
        var reported: [BatchRowResult] = []
        var chunks = 0
        try Authority.enrollBatch(
            home: home, passphrase: Self.passphrase, actor: "test", rows: { rows }, jobs: jobs, validity: nil, now: Date(),
            chunkSize: chunkSize
        ) { results in
            chunks += 1
            reported += results
        }
        #expect(reported.map(\.row) == rows)
        #expect(chunks == BatchPipeline.chunkBoundaries(count: rows.count, chunkSize: chunkSize).count - 1)
        #expect(reported.filter { $0.status == .enrolled }.count == 30)
        #expect(reported.first { $0.row.id == "wrong-cn" }?.detail.contains("does not match") == true)
        #expect(reported.first { $0.row.id == "no-file" }?.status == .refused)
        let registry = try Registry(path: home.registryPath)
        let serials = Set(reported.compactMap { $0.issued?.serial })
        #expect(serials.count == 30)
        for result in reported where result.status == .enrolled {
            #expect(try registry.device(result.row.id)?.currentSerial == result.issued?.serial)
        }
        guard case .intact(let events, _) = try registry.verifyAudit() else {
            Issue.record("audit chain broken")
            return
        }
        #expect(events == 30)

        // A re-run writes nothing and skips every enrolled row.
        var again: [BatchRowResult] = []
        try Authority.enrollBatch(
            home: home, passphrase: Self.passphrase, actor: "test", rows: { rows }, jobs: jobs, validity: nil, now: Date(),
            chunkSize: chunkSize
        ) { again += $0 }
        #expect(again.filter { $0.status == .skipped }.count == 30)
        #expect(again.filter { $0.status == .enrolled }.isEmpty)
    }

    @Test("a wrong passphrase fails before any row is recorded, after the rows were parsed")
    func wrongPassphrase() throws {
        let dir = try TemporaryDirectory()
        let (home, rows) = try Self.fleet(dir, count: 3)
        let parsed = Mutex(false)
        #expect(throws: WardenError.self) {
            try Authority.enrollBatch(
                home: home, passphrase: Array("not the passphrase!".utf8), actor: "test",
                rows: {
                    parsed.withLock { $0 = true }
                    return rows
                }, jobs: 2, validity: nil, now: Date()
            ) { _ in Issue.record("no chunk may be reported") }
        }
        #expect(parsed.withLock { $0 })
        #expect(!FileManager.default.fileExists(atPath: home.registryPath), "a failed unlock creates no registry")
    }

    @Test("an error from the row source wins over a missing CA, and nothing is created")
    func rowErrorFirst() throws {
        let dir = try TemporaryDirectory()
        let home = WardenHome(path: dir.file("no-home"))
        #expect {
            try Authority.enrollBatch(
                home: home, passphrase: Self.passphrase, actor: "test", rows: { throw WardenError.badInput("bad batch") },
                jobs: 2, validity: nil, now: Date()
            ) { _ in }
        } throws: { ($0 as? WardenError)?.message == "bad batch" }
        #expect(!FileManager.default.fileExists(atPath: home.registryPath))
    }
}
