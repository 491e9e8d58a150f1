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
            let trimmed = trimmingWhitespace(line)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map(trimmingWhitespace)
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

    /// `text.trimmingCharacters(in: .whitespaces)`, without Foundation when both ends are ASCII (the usual case: a batch
    /// file has thousands of lines).
    static func trimmingWhitespace(_ text: Substring) -> String {
        let utf8 = text.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, utf8[start] == 0x20 || utf8[start] == 0x09 { start = utf8.index(after: start) }
        while end > start, utf8[utf8.index(before: end)] == 0x20 || utf8[utf8.index(before: end)] == 0x09 { end = utf8.index(before: end) }
        if start < end, utf8[start] >= 0x80 || utf8[utf8.index(before: end)] >= 0x80 {
            return text.trimmingCharacters(in: .whitespaces)
        }
        return String(text[start..<end])
    }

    /// Opens the authority of `home` and enrolls the rows that `rows` returns, like
    /// ``enrollBatch(_:jobs:validity:now:chunkSize:onChunk:)``, with the unlocking of the issuing key off the critical
    /// path: the key is decrypted (PBKDF2 with a deliberately high iteration count) on its own thread while `rows` runs
    /// (e.g. parses the batch file), the registry is opened and `jobs - 1` threads (at least one) already read and check
    /// CSRs, which needs no private key. Signing starts as soon as the key is ready.
    ///
    /// - Throws: what `rows` throws, then the errors of ``open(home:passphrase:actor:)`` (nothing is written in either
    ///   case), then storage errors.
    public static func enrollBatch(
        home: WardenHome, passphrase: [UInt8], actor: String, rows: () throws -> [BatchRow], jobs: Int,
        validity: WardenDuration?, now: Date, chunkSize: Int = 256, onChunk: ([BatchRowResult]) throws -> Void
    ) throws {
        let unlock = IssuingKeyUnlock(layout: home.ca, passphrase: passphrase)
        let rows = try rows()
        let locked = try unlock.lockedAuthority()
        let pipeline = BatchPipeline(rows: rows, chunkSize: chunkSize)
        // One core decrypts the key; the others check CSRs meanwhile (more checkers would only slow the key down).
        let checking = BatchPipeline.spawn(max(1, jobs - 1)) { _ in
            pipeline.check(until: { unlock.isFinished }) { row in check(row, validate: locked.validateCSR) }
        }
        // An existing registry is opened meanwhile; a new one is only created once the key proved the passphrase right.
        let existing = SecureFile.mode(of: home.registryPath) != nil
        var registry = Result { try existing ? Registry(path: home.registryPath) : nil }
        let ca = Result { try unlock.authority() }
        if case .failure = ca { pipeline.cancelled.store(true, ordering: .relaxed) }
        if case .failure = registry { pipeline.cancelled.store(true, ordering: .relaxed) }
        checking.wait()
        let unlocked = try ca.get()
        if !existing { registry = Result { try Registry(path: home.registryPath) } }
        let authority = Authority(home: home, registry: try registry.get()!, ca: unlocked, actor: actor)
        try authority.run(pipeline, jobs: jobs, validity: validity, now: now, onChunk: onChunk)
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
        try run(BatchPipeline(rows: rows, chunkSize: chunkSize), jobs: jobs, validity: validity, now: now, onChunk: onChunk)
    }

    /// The signing phase, on `jobs` threads in all: `jobs - 1` workers finish rows in file order (checking the ones the
    /// first phase did not reach) while this thread records each chunk in one transaction as soon as all its rows are
    /// signed, then reports it; while it waits for a chunk, this thread finishes rows too.
    func run(
        _ pipeline: BatchPipeline, jobs: Int, validity: WardenDuration?, now: Date, onChunk: ([BatchRowResult]) throws -> Void
    ) throws {
        guard pipeline.chunkCount > 0 else { return }
        let ca = self.ca
        // One template for the whole batch: every certificate has the same validity. If the validity is refused, every
        // row that passed its checks is refused with that reason.
        let template = Result { try ca.deviceTemplate(validity: validity, now: now) }
        let finish: @Sendable (BatchRow, BatchPipeline.Checked?) -> BatchRowResult = { row, checked in
            Self.finish(row, checked: checked ?? Self.check(row, validate: ca.validateCSR), ca: ca, template: template)
        }
        let workers = BatchPipeline.spawn(max(0, jobs - 1)) { _ in
            while pipeline.finishOne(finish) {}
        }
        defer {
            pipeline.cancelled.store(true, ordering: .relaxed)
            workers.wait()
        }
        for chunk in 0..<pipeline.chunkCount {
            while !pipeline.isComplete(chunk), pipeline.finishOne(finish) {}
            var results = pipeline.awaitChunk(chunk)
            try record(&results, validity: validity, now: now)
            try onChunk(results)
        }
    }

    /// Reads and checks one row's CSR. Pure CPU and a file read; needs no private key.
    static func check(
        _ row: BatchRow, validate: (_ csr: [UInt8], _ deviceID: DeviceID, _ source: String) throws -> ValidatedCSR
    ) -> BatchPipeline.Checked {
        do {
            let id = try DeviceID(row.id)
            for group in row.groups { try validateGroup(group) }
            let csr = try SecureFile.read(row.csrPath, limit: CSRValidator.maximumSize, what: "CSR file")
            return .valid(try validate(csr, id, row.csrPath))
        } catch {
            return .refused(reason(error))
        }
    }

    /// Signs a checked row.
    static func finish(
        _ row: BatchRow, checked: BatchPipeline.Checked, ca: CertificateAuthority,
        template: Result<DeviceCertificateTemplate, any Error>
    ) -> BatchRowResult {
        switch checked {
        case .refused(let why):
            return BatchRowResult(row: row, status: .refused, detail: why, issued: nil)
        case .valid(let validated):
            do {
                let issued = try ca.issue(validated, template: try template.get())
                return BatchRowResult(row: row, status: .enrolled, detail: issued.serial, issued: issued)
            } catch {
                return BatchRowResult(row: row, status: .refused, detail: reason(error), issued: nil)
            }
        }
    }

    /// The report's wording of a row's failure.
    static func reason(_ error: any Error) -> String {
        (error as? WardenError)?.message ?? "\(error)"
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
