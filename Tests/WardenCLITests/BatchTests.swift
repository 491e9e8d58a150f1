import Foundation
import Testing
import WardenTestSupport

@Suite("batch enrollment and concurrency")
struct BatchTests {
    /// Writes `count` CSRs named `<prefix>-NNN` and a batch CSV listing them (relative paths).
    func batchFile(_ fleet: Fleet, prefix: String, count: Int, extraLines: [String] = []) throws -> String {
        var lines = ["id,csr_path,group"]
        for index in 0..<count {
            let id = String(format: "\(prefix)-%03d", index)
            _ = try fleet.csr(id)
            lines.append("\(id),\(id).csr,\(prefix)")
        }
        lines.append(contentsOf: extraLines)
        return try fleet.dir.write("\(prefix).csv", lines.joined(separator: "\n") + "\n")
    }

    @Test("a batch enrolls good rows, reports bad ones, and a re-run duplicates nothing")
    func batchAndRerun() throws {
        let fleet = try Fleet()
        _ = try fleet.csr("mismatch-cn", name: "wrong")
        let csv = try batchFile(fleet, prefix: "meter", count: 40, extraLines: ["bad-row,wrong.csr", "admin,meter-000.csr", "missing-csr,nothing.csr"])
        let report = fleet.dir.file("report.csv")
        let first = try fleet.run("device", "enroll", "--batch", csv, "--jobs", "2", "--report", report, "--out-dir", fleet.dir.file("certs"))
        #expect(first.status == 1, "refused rows make the exit non-zero")
        let lines = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 44)
        #expect(lines.filter { $0.contains(",enrolled,") }.count == 40)
        #expect(lines.filter { $0.contains(",refused,") }.count == 3)
        #expect(lines.first { $0.contains("bad-row") }?.contains("does not match") == true)
        #expect(try fleet.count("certificates") == 40)
        #expect(fleet.files(in: fleet.dir.file("certs")).count == 40)
        let verified = try Oracle.openssl(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", fleet.rootPEM, "-untrusted", fleet.issuingPEM, fleet.dir.file("certs/meter-007.crt.pem")])
        #expect(verified.status == 0, "\(verified.combined)")
        let fromRegistry = try fleet.run("device", "show", "meter-007", "--pem")
        #expect(fromRegistry.stdout == (try String(contentsOfFile: fleet.dir.file("certs/meter-007.crt.pem"), encoding: .utf8)))

        let second = try fleet.run("device", "enroll", "--batch", csv, "--report", report)
        #expect(second.status == 1)
        let rerun = try String(contentsOfFile: report, encoding: .utf8)
        #expect(rerun.components(separatedBy: ",skipped,").count - 1 == 40)
        #expect(try fleet.count("certificates") == 40)
        #expect(try fleet.count("devices") == 40)
        #expect(try fleet.run("audit", "verify").status == 0)
    }

    @Test("malformed batch files are refused before anything is written")
    func malformedBatch() throws {
        let fleet = try Fleet()
        for (name, text) in [("quotes.csv", "\"a\",b\n"), ("fields.csv", "a,b,c,d\n"), ("empty.csv", "\n# only a comment\n")] {
            let path = try fleet.dir.write(name, text)
            let result = try fleet.run("device", "enroll", "--batch", path)
            #expect(result.status == 2, "\(name): \(result.stderr)")
            #expect(result.stderr.contains(name))
        }
        #expect(try fleet.count("certificates") == 0)
    }

    @Test("two processes enrolling at once: no duplicate serial, no lost row, one winner per id")
    func concurrentProcesses() throws {
        let fleet = try Fleet()
        let a = try batchFile(fleet, prefix: "left", count: 60)
        let b = try batchFile(fleet, prefix: "right", count: 60)
        let shared = try fleet.csr("contended")
        let processes = [
            try fleet.warden.start(["device", "enroll", "--batch", a, "--jobs", "1", "--report", fleet.dir.file("a.report")]),
            try fleet.warden.start(["device", "enroll", "--batch", b, "--jobs", "1", "--report", fleet.dir.file("b.report")]),
            try fleet.warden.start(["device", "enroll", "contended", "--csr", shared, "--out", fleet.dir.file("c1.pem")]),
            try fleet.warden.start(["device", "enroll", "contended", "--csr", shared, "--out", fleet.dir.file("c2.pem")]),
        ]
        let statuses = processes.map { $0.wait() }
        #expect(statuses[0] == 0)
        #expect(statuses[1] == 0)
        #expect([statuses[2], statuses[3]].sorted() == [0, 1])
        #expect(try fleet.count("devices") == 121)
        #expect(try fleet.count("certificates") == 121)
        let distinct = try WardenProcess.launch("sqlite3", [fleet.registry, "SELECT count(DISTINCT serial) FROM certificates;"])
        #expect(distinct.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "121")
        #expect([FileManager.default.fileExists(atPath: fleet.dir.file("c1.pem")), FileManager.default.fileExists(atPath: fleet.dir.file("c2.pem"))].filter { $0 }.count == 1)
        let audit = try fleet.run("audit", "verify")
        #expect(audit.status == 0, "\(audit.stderr)")
        #expect(audit.stdout.contains("122 event(s)"))
    }
}
