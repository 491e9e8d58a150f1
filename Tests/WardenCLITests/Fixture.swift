import Foundation
import Testing
import WardenTestSupport

/// A fresh Warden home with a CA, driven through the real `warden` executable.
final class Fleet: @unchecked Sendable {
    // @unchecked: the fields are immutable after init; TemporaryDirectory is itself Sendable.
    let dir: TemporaryDirectory
    let warden: WardenProcess
    var home: String { warden.home }
    var registry: String { home + "/warden.sqlite" }

    init(initCA: Bool = true) throws {
        dir = try TemporaryDirectory()
        warden = WardenProcess(home: dir.file("home"))
        if initCA {
            let created = try warden.run(["ca", "init", "--org", "Test Fleet"])
            guard created.status == 0 else { throw TestSupportError("ca init failed: \(created.stderr)") }
        }
    }

    /// Runs warden.
    func run(_ arguments: String...) throws -> WardenProcess.Result { try warden.run(arguments) }

    /// Makes a device key + CSR with openssl.
    @discardableResult
    func csr(_ commonName: String, algorithm: DeviceKeys.Algorithm = .p256, name: String? = nil) throws -> String {
        try DeviceKeys.make(commonName, in: dir, algorithm: algorithm, name: name).csr
    }

    /// Enrolls `id` from a fresh CSR and returns the chain path.
    @discardableResult
    func enroll(_ id: String, group: String? = nil) throws -> String {
        let csr = try csr(id)
        let out = dir.file("\(id).crt.pem")
        var args = ["device", "enroll", id, "--csr", csr, "--out", out]
        if let group { args += ["--group", group] }
        let result = try warden.run(args)
        guard result.status == 0 else { throw TestSupportError("enroll \(id) failed: \(result.stderr)") }
        return out
    }

    /// The root certificate path.
    var rootPEM: String { home + "/ca/root.crt.pem" }
    /// The issuing CA certificate path.
    var issuingPEM: String { home + "/ca/issuing.crt.pem" }

    /// Row count of a registry table, read with the sqlite3 shell (an independent reader).
    func count(_ table: String) throws -> Int {
        let result = try WardenProcess.launch("sqlite3", [registry, "SELECT count(*) FROM \(table);"])
        guard result.status == 0, let value = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestSupportError("sqlite3 failed: \(result.stderr)")
        }
        return value
    }

    /// Files in a directory (names), sorted.
    func files(in path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }
}

extension WardenProcess.Result {
    /// The error output is exactly one line.
    var oneLineError: Bool {
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true)
        return lines.count == 1
    }
}
