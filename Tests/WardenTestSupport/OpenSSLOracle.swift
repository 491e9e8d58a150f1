import Foundation

/// Runs the real `openssl` CLI (OpenSSL 3.0) and pkilint as independent oracles from tests.
///
/// Output goes to temporary files rather than pipes, so a chatty child can never deadlock on a full pipe buffer.
/// Executables are looked up on `PATH` (via `/usr/bin/env`), which finds pyenv shims such as `lint_crl`.
public enum OpenSSLOracle {
    /// What a child process did.
    public struct Output: Sendable {
        /// The exit status (or the signal number if it was killed by a signal).
        public var status: Int32
        /// Standard output, decoded as UTF-8 (lossy).
        public var stdout: String
        /// Standard error, decoded as UTF-8 (lossy).
        public var stderr: String
        /// Standard output as raw bytes (for DER output).
        public var stdoutBytes: [UInt8]

        /// Whether the process exited with status 0.
        public var succeeded: Bool { status == 0 }
        /// stdout followed by stderr, for messages and for tools that print verdicts on either stream.
        public var combined: String { stdout + stderr }
    }

    /// An error from the oracle itself (not from the tool it ran).
    public struct OracleError: Error, CustomStringConvertible {
        public var description: String

        /// Creates the error.
        public init(description: String) { self.description = description }
    }

    /// Runs `openssl` with `arguments`, feeding `stdin` if given.
    public static func run(_ arguments: [String], stdin: [UInt8]? = nil) throws -> Output {
        try run(executable: "openssl", arguments, stdin: stdin)
    }

    /// Runs any executable found on `PATH` with `arguments`, feeding `stdin` if given.
    public static func run(executable: String, _ arguments: [String], stdin: [UInt8]? = nil) throws -> Output {
        let result = try WardenProcess.launch(executable, arguments, stdin: stdin)
        return Output(status: result.status, stdout: result.stdout, stderr: result.stderr, stdoutBytes: result.stdoutBytes)
    }

    /// Creates a fresh private temporary directory, passes it to `body`, and removes it afterwards.
    public static func withTemporaryDirectory<T>(_ body: (URL) throws -> T) throws -> T {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        return try body(dir)
    }

    /// Async variant of ``withTemporaryDirectory(_:)``.
    public static func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        return try await body(dir)
    }

    /// Creates a fresh temporary directory (mode 0700) that the caller must remove.
    public static func makeTemporaryDirectory() throws -> URL {
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
    public static func write(_ contents: String, to name: String, in dir: URL) throws -> String {
        try write(Array(contents.utf8), to: name, in: dir)
    }

    /// Writes `bytes` to `name` inside `dir` and returns its path.
    @discardableResult
    public static func write(_ bytes: [UInt8], to name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    // MARK: pkilint

    /// One pkilint finding at or above the requested severity.
    public struct LintFinding: Sendable, CustomStringConvertible {
        public var validator: String
        public var nodePath: String
        public var severity: String
        public var code: String
        public var message: String?

        public var description: String {
            "\(severity) \(code) at \(nodePath) (\(validator))" + (message.map { ": \($0)" } ?? "")
        }
    }

    /// Lints a certificate (PEM or DER) with pkilint's PKIX profile; returns findings at `severity` or above.
    ///
    /// pkilint exits with the number of findings and prints nothing on stdout when clean (JSON: empty `results`).
    /// A file it cannot load is reported on stdout/stderr without JSON, which this turns into a thrown error so
    /// "could not parse" never passes as "clean".
    public static func pkilintCert(_ path: String, severity: String = "WARNING") throws -> [LintFinding] {
        try pkilint(executable: "lint_pkix_cert", ["lint", "-s", severity, "-f", "JSON", path])
    }

    /// Lints a CRL (PEM or DER) with pkilint (`lint_crl -t CRL -p PKIX`); returns findings at `severity` or above.
    public static func pkilintCRL(_ path: String, severity: String = "WARNING") throws -> [LintFinding] {
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
