import Foundation

/// Runs the built `warden` executable as a user would, with its own home and passphrase.
public struct WardenProcess: Sendable {
    /// Result of one invocation.
    public struct Result: Sendable {
        /// Exit status.
        public var status: Int32
        /// Standard output.
        public var stdout: String
        /// Standard error.
        public var stderr: String
        /// Standard output as raw bytes (DER output).
        public var stdoutBytes: [UInt8] = []
        /// stdout followed by stderr (openssl prints verdicts on either).
        public var combined: String { stdout + stderr }
    }

    /// The Warden home used by every invocation.
    public let home: String
    /// Extra environment (WARDEN_PASSPHRASE by default).
    public var environment: [String: String]

    /// A runner for `home`, with `passphrase` in `WARDEN_PASSPHRASE` (nil: unset).
    public init(home: String, passphrase: String? = "correct horse battery staple") {
        self.home = home
        var environment = ProcessInfo.processInfo.environment
        environment["WARDEN_HOME"] = home
        environment.removeValue(forKey: "WARDEN_PASSPHRASE")
        if let passphrase { environment["WARDEN_PASSPHRASE"] = passphrase }
        self.environment = environment
    }

    /// The directory holding the built products: `WARDEN_BIN_DIR`, else the directory of the running test
    /// bundle (SwiftPM puts the executables next to it).
    public static var binDirectory: String {
        if let explicit = ProcessInfo.processInfo.environment["WARDEN_BIN_DIR"] { return explicit }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // On Linux the runner is `<bin>/<package>PackageTests.xctest`; walk up to the directory that holds `warden`.
        for _ in 0..<4 {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("warden").path) { return url.path }
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug").path
    }

    /// Path of the `warden` executable.
    public static var executable: String { binDirectory + "/warden" }

    /// Runs `warden arguments…`.
    public func run(_ arguments: [String], stdin: [UInt8]? = nil) throws -> Result {
        try Self.launch(Self.executable, arguments, environment: environment, stdin: stdin)
    }

    /// Starts `warden arguments…` without waiting (clean signal state, so SIGTERM reaches it).
    public func start(_ arguments: [String], output: String? = nil) throws -> SpawnedProcess {
        try SpawnedProcess(Self.executable, arguments, environment: environment, output: output)
    }

    /// Runs any executable (absolute path or on PATH) and captures its output through files, so a chatty
    /// child can never block on a full pipe.
    public static func launch(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdin: [UInt8]? = nil
    ) throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("warden-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outPath = scratch.appendingPathComponent("out").path
        let errPath = scratch.appendingPathComponent("err").path
        let inPath = scratch.appendingPathComponent("in").path
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(stdin ?? []))
        let path = executable.hasPrefix("/") ? executable : try resolve(executable)
        // Clean signal state: tools such as mosquitto_sub -W rely on SIGALRM, which a blocked mask would swallow.
        let child = try SpawnedProcess(path, arguments, environment: environment, output: outPath, errors: errPath, input: inPath)
        let status = child.wait()
        let out = Array((try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data())
        return Result(
            status: status,
            stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data(), as: UTF8.self),
            stdoutBytes: out)
    }

    /// Finds `name` on PATH.
    static func resolve(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw TestSupportError("\(name) is not on PATH")
    }
}

/// A temporary directory removed when the value is released.
public final class TemporaryDirectory: Sendable {
    /// Its path.
    public let path: String

    /// Creates a fresh directory (mode 0700).
    public init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("warden-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// `path/name`.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes bytes to `name` and returns the path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    /// Writes text to `name` and returns the path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String { try write(name, Array(text.utf8)) }
}

/// Keys and CSRs made by the real openssl CLI, the way a device would make them.
public enum DeviceKeys {
    /// Key algorithms a test device can use.
    public enum Algorithm: String, Sendable, CaseIterable {
        case p256, p384, ed25519, rsa2048, p521
    }

    /// Generates a key and a CSR with subject `/CN=<commonName>` in `directory`; returns (key path, csr path).
    @discardableResult
    public static func make(_ commonName: String, in directory: TemporaryDirectory, algorithm: Algorithm = .p256, name: String? = nil) throws -> (key: String, csr: String) {
        let base = name ?? commonName
        let key = directory.file("\(base).key")
        let csr = directory.file("\(base).csr")
        let keyArgs: [String]
        switch algorithm {
        case .p256: keyArgs = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]
        case .p384: keyArgs = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", key]
        case .p521: keyArgs = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521", "-out", key]
        case .ed25519: keyArgs = ["genpkey", "-algorithm", "ED25519", "-out", key]
        case .rsa2048: keyArgs = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]
        }
        let generated = try WardenProcess.launch("openssl", keyArgs)
        guard generated.status == 0 else { throw TestSupportError("openssl genpkey failed: \(generated.stderr)") }
        let request = try WardenProcess.launch("openssl", ["req", "-new", "-key", key, "-subj", "/CN=" + commonName.replacingOccurrences(of: "/", with: "\\/").replacingOccurrences(of: "+", with: "\\+"), "-out", csr])
        guard request.status == 0 else { throw TestSupportError("openssl req failed: \(request.stderr)") }
        return (key, csr)
    }
}

/// An error in test support itself.
public struct TestSupportError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
    /// Creates the error.
    public init(_ description: String) { self.description = description }
}
