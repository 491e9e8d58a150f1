import Dispatch
import Foundation
import Synchronization
import WardenCore
import WardenPKI
import WardenStore

/// One row of a batch enrollment file: `id,csr_path[,group]`.
public struct BatchRow: Sendable, Equatable {
    /// 1-based line number in the file, for the report.
    public var line: Int
    /// The device id as written.
    public var id: String
    /// Path of the CSR (relative paths are resolved against the CSV's directory).
    public var csrPath: String
    /// Optional groups (`;`-separated in the third column).
    public var groups: [String]
}

/// The result for one row.
public struct BatchRowResult: Sendable {
    /// What happened.
    public enum Status: String, Sendable {
        /// Newly enrolled; the certificate is durable in the registry.
        case enrolled
        /// Already enrolled with the same public key: nothing written (safe re-run).
        case skipped
        /// Refused; see the detail.
        case refused
    }

    /// The row.
    public var row: BatchRow
    /// The status.
    public var status: Status
    /// Serial for enrolled/skipped rows, the reason for refused ones.
    public var detail: String
    /// The issued certificate for enrolled rows.
    public var issued: IssuedCertificate?
}

extension Authority {
    /// Largest batch file accepted.
    public static let maximumBatchFileSize = 64 * 1024 * 1024
    /// Largest number of rows in one batch file.
    public static let maximumBatchRows = 1_000_000

    /// Parses a batch CSV strictly: `id,csr_path[,groups]`, an optional header line `id,csr_path[,group]`,
    /// blank lines and `#` comments ignored. Fields may not contain quotes or commas.
    public static func parseBatch(_ bytes: [UInt8], source: String) throws -> [BatchRow] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw WardenError.badInput("batch file '\(source)' is not UTF-8 text")
        }
        let baseDirectory = (source as NSString).deletingLastPathComponent
        var rows: [BatchRow] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            if rows.isEmpty && index == 0 && fields.first == "id" && fields.count >= 2 && fields[1] == "csr_path" { continue }
            guard (2...3).contains(fields.count), !fields[0].isEmpty, !fields[1].isEmpty, !trimmed.contains("\"") else {
                throw WardenError.badInput("batch file '\(source)' line \(index + 1): expected 'id,csr_path[,group]'")
            }
            guard rows.count < maximumBatchRows else {
                throw WardenError.badInput("batch file '\(source)' has more than \(maximumBatchRows) rows")
            }
            let path = fields[1].hasPrefix("/") || baseDirectory.isEmpty ? fields[1] : baseDirectory + "/" + fields[1]
            let groups = fields.count == 3 ? fields[2].split(separator: ";").map(String.init).filter { !$0.isEmpty } : []
            rows.append(BatchRow(line: index + 1, id: fields[0], csrPath: path, groups: groups))
        }
        guard !rows.isEmpty else { throw WardenError.badInput("batch file '\(source)' has no rows") }
        return rows
    }

    /// Enrolls `rows`, validating and signing on `jobs` threads and recording each chunk of rows in one
    /// durable transaction. `onChunk` runs after every commit with that chunk's results, in file order:
    /// a row reported as enrolled is already durable.
    ///
    /// Re-running the same file is safe: rows whose device already holds a certificate for the same key are
    /// reported as skipped and nothing is duplicated. A failing row never stops the batch.
    public func enrollBatch(
        _ rows: [BatchRow], jobs: Int, validity: WardenDuration?, now: Date, chunkSize: Int = 256,
        onChunk: ([BatchRowResult]) throws -> Void
    ) throws {
        let jobs = max(1, jobs)
        let chunks = stride(from: 0, to: rows.count, by: chunkSize).map { Array(rows[$0..<min($0 + chunkSize, rows.count)]) }
        guard !chunks.isEmpty else { return }
        // Pipeline: while chunk i is committed (serial, waits on fsync) and reported, chunk i+1 is already being
        // validated and signed on the worker threads.
        var current = prepare(chunks[0], jobs: jobs, validity: validity, now: now)
        for index in chunks.indices {
            let upcoming = Mutex<[BatchRowResult]?>(nil)
            let group = DispatchGroup()
            if index + 1 < chunks.count {
                let chunk = chunks[index + 1]
                DispatchQueue.global().async(group: group) {
                    let prepared = self.prepare(chunk, jobs: jobs, validity: validity, now: now)
                    upcoming.withLock { $0 = prepared }
                }
            }
            defer { group.wait() }
            try record(&current, validity: validity, now: now)
            try onChunk(current)
            group.wait()
            current = upcoming.withLock { $0 } ?? []
        }
    }

    /// Reads, validates and signs a chunk in parallel. Pure CPU and file reads; nothing is recorded.
    func prepare(_ chunk: [BatchRow], jobs: Int, validity: WardenDuration?, now: Date) -> [BatchRowResult] {
        let collected = Mutex<[(Int, BatchRowResult)]>([])
        let ca = self.ca
        DispatchQueue.concurrentPerform(iterations: jobs) { worker in
            var local: [(Int, BatchRowResult)] = []
            var index = worker
            while index < chunk.count {
                local.append((index, Self.prepareRow(chunk[index], ca: ca, validity: validity, now: now)))
                index += jobs
            }
            collected.withLock { $0.append(contentsOf: local) }
        }
        return collected.withLock { all in all.sorted { $0.0 < $1.0 }.map(\.1) }
    }

    static func prepareRow(_ row: BatchRow, ca: CertificateAuthority, validity: WardenDuration?, now: Date) -> BatchRowResult {
        do {
            let id = try DeviceID(row.id)
            for group in row.groups { try validateGroup(group) }
            let csr = try SecureFile.read(row.csrPath, limit: CSRValidator.maximumSize, what: "CSR file")
            let validated = try ca.validateCSR(csr, deviceID: id, source: row.csrPath)
            let issued = try ca.issue(validated, validity: validity, now: now)
            return BatchRowResult(row: row, status: .enrolled, detail: issued.serial, issued: issued)
        } catch let error as WardenError {
            return BatchRowResult(row: row, status: .refused, detail: error.message, issued: nil)
        } catch {
            return BatchRowResult(row: row, status: .refused, detail: "\(error)", issued: nil)
        }
    }

    /// Records the signed rows of a chunk in one transaction and turns registry outcomes into row statuses.
    func record(_ results: inout [BatchRowResult], validity: WardenDuration?, now: Date) throws {
        let pending = results.indices.filter { results[$0].issued != nil }
        guard !pending.isEmpty else { return }
        let outcomes = try registry.record(
            pending.map { Self.enrollment(results[$0].issued!, groups: results[$0].row.groups) }, actor: actor, now: now)
        for (index, outcome) in zip(pending, outcomes) {
            switch outcome {
            case .enrolled:
                break
            case .alreadyEnrolledWithSameKey(let serial):
                results[index].status = .skipped
                results[index].detail = "already enrolled with the same key (serial \(serial))"
                results[index].issued = nil
            case .conflict(let why):
                results[index].status = .refused
                results[index].detail = why
                results[index].issued = nil
            case .serialCollision:
                // Astronomically rare (126-bit serials); fall back to the single-row path, which retries.
                do {
                    let csr = try SecureFile.read(results[index].row.csrPath, limit: CSRValidator.maximumSize, what: "CSR file")
                    let issued = try enroll(
                        try DeviceID(results[index].row.id), csr: csr, csrSource: results[index].row.csrPath,
                        groups: results[index].row.groups, validity: validity, now: now)
                    results[index].issued = issued
                    results[index].detail = issued.serial
                } catch {
                    results[index].status = .refused
                    results[index].detail = "\(error)"
                    results[index].issued = nil
                }
            }
        }
    }
}
