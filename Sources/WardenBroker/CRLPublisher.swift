import Foundation
import WardenCore
import WardenPKI

#if canImport(Glibc)
import Glibc
#endif

/// Hands a CRL to Mosquitto without ever exposing it to a bad one.
///
/// Mosquitto turns revocation checking off for everyone when a reloaded CRL is corrupt, and refuses everyone when
/// it is expired. So: write to a temporary file next to the live one → validate it (our parser and signature
/// check, then `openssl crl -CAfile`, the same library Mosquitto loads it with) → rename over the live file →
/// SIGHUP the broker. A CRL that fails any check never reaches the broker; the live file is left untouched.
public enum CRLPublisher {
    /// A CRL must stay fresh at least this long to be published (a day).
    public static let minimumRemaining: TimeInterval = 86_400

    /// Validates and installs `crlPEM` into `layout`, then signals the broker if it runs.
    /// - Returns: whether a running broker was signalled.
    @discardableResult
    public static func publish(crlPEM: String, issuerPEM: String, layout: BrokerLayout, now: Date) throws -> Bool {
        try CRLValidation.validate(
            crlPEM: crlPEM, issuerPEM: issuerPEM, now: now, minimumRemaining: minimumRemaining, source: "new CRL for \(layout.directory)")
        let owner = SecureFile.owner(of: layout.crl)
        let staged = try SecureFile.stage(Array(crlPEM.utf8), besides: layout.crl, mode: 0o644)
        do {
            try checkWithOpenSSL(staged, caFile: layout.caFile)
            if let owner { _ = chown(staged, owner.uid, owner.gid) }
            try SecureFile.commit(staged: staged, to: layout.crl)
        } catch {
            SecureFile.discard(staged: staged)
            throw error
        }
        return BrokerProcess.signal(layout: layout, SIGHUP)
    }

    /// Second opinion from OpenSSL, which is what Mosquitto uses to load the file.
    static func checkWithOpenSSL(_ path: String, caFile: String) throws {
        guard let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return  // Our own parser and signature check already passed; openssl is an extra gate when present.
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = ["crl", "-in", path, "-CAfile", caFile, "-noout"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw WardenError.badInput("OpenSSL rejects the new CRL for '\(caFile)'; the broker keeps the previous one")
        }
    }
}

/// Finding and signalling the broker process of a setup through its PID file.
public enum BrokerProcess {
    /// The PID in the setup's pid file if that process is alive and is Mosquitto.
    public static func runningPID(layout: BrokerLayout) -> pid_t? {
        guard let text = try? SecureFile.readText(layout.pidFile, limit: 64),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, 0) == 0
        else { return nil }
        // Guard against a recycled PID: the process must be mosquitto.
        if let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
            !comm.hasPrefix("mosquitto")
        {
            return nil
        }
        return pid
    }

    /// Sends `signal` to the running broker; false if none runs.
    @discardableResult
    public static func signal(layout: BrokerLayout, _ signal: Int32) -> Bool {
        guard let pid = runningPID(layout: layout) else { return false }
        return kill(pid, signal) == 0
    }
}
