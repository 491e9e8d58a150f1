import Foundation
import WardenAuthority
import WardenCore
import WardenPKI

/// `warden device enroll --batch`: parallel signing, durable chunked recording, a per-row report and a
/// progress bar on a terminal.
struct BatchEnroll {
    let global: GlobalOptions
    let file: String
    let jobs: Int?
    let outDir: String?
    let report: String?
    let validity: WardenDuration?

    func run() async throws {
        let passphrase = try global.passphrase()
        var reportHandle = FileHandle.standardOutput
        var reportTemporary: String?
        var rowCount = 0
        var counts: [BatchRowResult.Status: Int] = [:]
        var done = 0
        var lines = "line,id,status,detail\n"
        let progress = Console.stderrIsTerminal
        let started = Date()
        do {
            // The issuing key is unlocked (PBKDF2) while the batch file is parsed and the first CSRs are checked.
            try Authority.enrollBatch(
                home: global.wardenHome, passphrase: passphrase, actor: global.actor,
                rows: {
                    let rows = try Authority.parseBatch(
                        try SecureFile.read(file, limit: Authority.maximumBatchFileSize, what: "batch file"), source: file)
                    rowCount = rows.count
                    if let outDir { try SecureFile.ensureDirectory(outDir, mode: 0o755) }
                    if let report {
                        let staged = try SecureFile.stage([], besides: report)
                        reportTemporary = staged
                        guard let handle = FileHandle(forWritingAtPath: staged) else {
                            throw WardenError.storage("cannot write report '\(report)'")
                        }
                        reportHandle = handle
                    }
                    return rows
                },
                jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount, validity: validity, now: Date()
            ) { results in
                for result in results {
                    counts[result.status, default: 0] += 1
                    if let issued = result.issued, let outDir {
                        // The registry (already committed) is the durable record; the chain file is a convenience copy.
                        try SecureFile.writeAtomically(
                            Array(issued.chainPEM.utf8), to: "\(outDir)/\(issued.deviceID).crt.pem", durable: false)
                    }
                    lines += "\(result.row.line),\(Self.csvField(result.row.id)),\(result.status.rawValue),\(Self.csvField(result.detail))\n"
                }
                reportHandle.write(Data(lines.utf8))
                lines = ""
                done += results.count
                if progress { Console.progress(Self.bar(done: done, total: rowCount, started: started)) }
            }
        } catch {
            // Nothing half-written: a staged report of a batch that stopped (wrong passphrase, storage error) goes away.
            if let reportTemporary { SecureFile.discard(staged: reportTemporary) }
            throw error
        }
        if progress { Console.progress("\n") }
        if let reportTemporary, let report {
            try reportHandle.synchronize()
            try reportHandle.close()
            try SecureFile.commit(staged: reportTemporary, to: report)
        }
        let seconds = max(Date().timeIntervalSince(started), 0.001)
        Console.error(
            "batch \(file): \(counts[.enrolled, default: 0]) enrolled, \(counts[.skipped, default: 0]) skipped, "
                + "\(counts[.refused, default: 0]) refused in \(String(format: "%.2f", seconds)) s "
                + "(\(Int(Double(rowCount) / seconds)) rows/s)"
                + (outDir.map { "; chains in \($0)" } ?? "; chains: warden device show ID --pem"))
        if counts[.refused, default: 0] > 0 { throw WardenError.policy("\(counts[.refused, default: 0]) row(s) of '\(file)' were refused; see the report") }
    }

    /// A CSV field, quoted when it holds a comma, quote or newline.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"").replacingOccurrences(of: "\n", with: " ") + "\""
    }

    /// `[#########.........]  512/2000  25%  1234/s`
    static func bar(done: Int, total: Int, started: Date) -> String {
        let width = 30
        let filled = total == 0 ? width : done * width / total
        let rate = Double(done) / max(Date().timeIntervalSince(started), 0.001)
        return "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + "\(done)/\(total) \(total == 0 ? 100 : done * 100 / total)% \(Int(rate))/s"
    }
}
