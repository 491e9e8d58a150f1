import Foundation

/// Runs the real `openssl` CLI (OpenSSL 3.0) and pkilint as independent oracles from tests.
///
/// Output goes to temporary files rather than pipes, so a chatty child can never deadlock on a full pipe buffer.
/// Executables are looked up on `PATH` (via `/usr/bin/env`), which finds pyenv shims such as `lint_crl`.
enum OpenSSLOracle {
    /// What a child process did.
    struct Output: Sendable {
        /// The exit status (or the signal number if it was killed by a signal).
        var status: Int32
        /// Standard output, decoded as UTF-8 (lossy).
        var stdout: String
        /// Standard error, decoded as UTF-8 (lossy).
        var stderr: String
        /// Standard output as raw bytes (for DER output).
        var stdoutBytes: [UInt8]

        /// Whether the process exited with status 0.
        var succeeded: Bool { status == 0 }
        /// stdout followed by stderr, for messages and for tools that print verdicts on either stream.
        var combined: String { stdout + stderr }
    }

    /// An error from the oracle itself (not from the tool it ran).
    struct OracleError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `openssl` with `arguments`, feeding `stdin` if given.
    static func run(_ arguments: [String], stdin: [UInt8]? = nil) throws -> Output {
        try run(executable: "openssl", arguments, stdin: stdin)
    }

    /// Runs any executable found on `PATH` with `arguments`, feeding `stdin` if given.
    static func run(executable: String, _ arguments: [String], stdin: [UInt8]? = nil) throws -> Output {
        try withTemporaryDirectory { dir in
            let outURL = dir.appendingPathComponent("stdout")
            let errURL = dir.appendingPathComponent("stderr")
            let inURL = dir.appendingPathComponent("stdin")
            _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: inURL.path, contents: Data(stdin ?? []))

            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [executable] + arguments
            let outHandle = try FileHandle(forWritingTo: outURL)
            let errHandle = try FileHandle(forWritingTo: errURL)
            let inHandle = try FileHandle(forReadingFrom: inURL)
            defer {
                try? outHandle.close()
                try? errHandle.close()
                try? inHandle.close()
            }
            process.standardOutput = outHandle
            process.standardError = errHandle
            process.standardInput = inHandle
            try process.run()
            process.waitUntilExit()

            let out = [UInt8]((try? Data(contentsOf: outURL)) ?? Data())
            let err = (try? Data(contentsOf: errURL)) ?? Data()
            return Output(
                status: process.terminationStatus,
                stdout: String(decoding: out, as: UTF8.self),
                stderr: String(decoding: err, as: UTF8.self),
                stdoutBytes: out
            )
        }
    }

    /// Creates a fresh private temporary directory, passes it to `body`, and removes it afterwards.
    static func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        return try body(dir)
    }

    /// Async variant of ``withTemporaryDirectory(_:)``.
    static func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        return try await body(dir)
    }

    /// Creates a fresh temporary directory (mode 0700) that the caller must remove.
    static func makeTemporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("warden-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(
            at: dir,
            withIntermediateDirectories: false,
            attributes: [.posixPermissions: 0o700]
        )
        return dir
    }

    /// Writes `contents` to `name` inside `dir` and returns its path.
    @discardableResult
    static func write(_ contents: String, to name: String, in dir: URL) throws -> String {
        try write(Array(contents.utf8), to: name, in: dir)
    }

    /// Writes `bytes` to `name` inside `dir` and returns its path.
    @discardableResult
    static func write(_ bytes: [UInt8], to name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    // MARK: pkilint

    /// One pkilint finding at or above the requested severity.
    struct LintFinding: Sendable, CustomStringConvertible {
        var validator: String
        var nodePath: String
        var severity: String
        var code: String
        var message: String?

        var description: String {
            "\(severity) \(code) at \(nodePath) (\(validator))" + (message.map { ": \($0)" } ?? "")
        }
    }

    /// Lints a certificate (PEM or DER) with pkilint's PKIX profile; returns findings at `severity` or above.
    ///
    /// pkilint exits with the number of findings and prints nothing on stdout when clean (JSON: empty `results`).
    /// A file it cannot load is reported on stdout/stderr without JSON, which this turns into a thrown error so
    /// "could not parse" never passes as "clean".
    static func pkilintCert(_ path: String, severity: String = "WARNING") throws -> [LintFinding] {
        try pkilint(executable: "lint_pkix_cert", ["lint", "-s", severity, "-f", "JSON", path])
    }

    /// Lints a CRL (PEM or DER) with pkilint (`lint_crl -t CRL -p PKIX`); returns findings at `severity` or above.
    static func pkilintCRL(_ path: String, severity: String = "WARNING") throws -> [LintFinding] {
        try pkilint(executable: "lint_crl", ["lint", "-t", "CRL", "-p", "PKIX", "-s", severity, "-f", "JSON", path])
    }

    private static func pkilint(executable: String, _ arguments: [String]) throws -> [LintFinding] {
        let output = try run(executable: executable, arguments)
        let text = output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)),
            let root = object as? [String: Any],
            let results = root["results"] as? [[String: Any]]
        else {
            throw OracleError(
                description: "\(executable) did not produce a JSON report (status \(output.status)): \(output.combined)"
            )
        }
        var findings: [LintFinding] = []
        for result in results {
            let validator = result["validator"] as? String ?? "?"
            let nodePath = result["node_path"] as? String ?? "?"
            for finding in result["finding_descriptions"] as? [[String: Any]] ?? [] {
                findings.append(
                    LintFinding(
                        validator: validator,
                        nodePath: nodePath,
                        severity: finding["severity"] as? String ?? "?",
                        code: finding["code"] as? String ?? "?",
                        message: finding["message"] as? String
                    )
                )
            }
        }
        return findings
    }
}
