import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real `mosquitto -c CONF` on a free loopback port, for tests.
///
/// The configuration text is produced by a closure that receives the chosen port, so a test writes its own
/// `listener <port> 127.0.0.1` block. Unless the text already sets them, the helper adds `user root` when running as
/// root (otherwise mosquitto drops to the `mosquitto` user and cannot read the test's 0700 temp directory),
/// `persistence false`, and a log file in the directory. The process is stopped (SIGTERM, then SIGKILL, by PID) in
/// ``stop()`` and in `deinit`.
public final class MosquittoProcess: @unchecked Sendable {
    // @unchecked Sendable: `process` is a Foundation `Process`, only touched under `lock` (stop) or read-only (pid).

    /// The loopback TCP port of the listener.
    public let port: Int
    /// The broker's process id.
    public let pid: Int32
    /// The directory holding the configuration and log (kept alive as long as the broker).
    public let directory: TemporaryDirectory
    /// Path of the written configuration file.
    public let configPath: String
    /// Path of mosquitto's log file.
    public let logPath: String

    private let process: Process
    private let lock = NSLock()

    /// Where `mosquitto` lives (`MOSQUITTO` environment variable, else the usual sbin paths).
    public static var executable: String {
        if let explicit = ProcessInfo.processInfo.environment["MOSQUITTO"] { return explicit }
        for candidate in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto", "/opt/homebrew/sbin/mosquitto"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "/usr/sbin/mosquitto"
    }

    /// Starts a broker and waits (at most `startupTimeout`) until its port accepts TCP connections.
    /// - Parameters:
    ///   - directory: where to write `mosquitto.conf` and the log (a fresh temporary directory by default).
    ///   - port: a fixed port (e.g. to restart a broker on the same port); a free one by default.
    ///   - configuration: returns the configuration text for the given port.
    public init(
        directory: TemporaryDirectory? = nil, port fixedPort: Int? = nil, startupTimeout: Duration = .seconds(5),
        configuration: (Int) -> String
    ) throws {
        let directory = try directory ?? TemporaryDirectory()
        self.directory = directory
        var lastError: (any Error)? = nil
        // A port found free can be taken before mosquitto binds it; try a few.
        for attempt in 0..<(fixedPort == nil ? 3 : 1) {
            let port = try fixedPort ?? Self.freeLoopbackPort()
            let configPath = directory.file("mosquitto-\(attempt).conf")
            let logPath = directory.file("mosquitto-\(attempt).log")
            var text = configuration(port)
            let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            var preamble = ""
            if geteuid() == 0 && !lines.contains(where: { $0.hasPrefix("user ") }) { preamble += "user root\n" }
            if !lines.contains(where: { $0.hasPrefix("persistence ") }) { preamble += "persistence false\n" }
            if !lines.contains(where: { $0.hasPrefix("log_dest ") }) {
                preamble += "log_dest file \(logPath)\nlog_type all\nconnection_messages true\n"
            }
            text = preamble + text + "\n"
            try text.write(toFile: configPath, atomically: true, encoding: .utf8)
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)

            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.executable)
            process.arguments = ["-c", configPath]
            let output = FileHandle(forWritingAtPath: logPath + ".stderr")
                ?? { _ = FileManager.default.createFile(atPath: logPath + ".stderr", contents: nil)
                    return FileHandle(forWritingAtPath: logPath + ".stderr") }()
            process.standardOutput = output ?? FileHandle.nullDevice
            process.standardError = output ?? FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            try? output?.close()
            do {
                try Self.waitForPort(port, process: process, timeout: startupTimeout, logPath: logPath)
                self.port = port
                self.pid = process.processIdentifier
                self.configPath = configPath
                self.logPath = logPath
                self.process = process
                return
            } catch {
                lastError = error
                Self.terminate(process)
            }
        }
        throw lastError ?? TestSupportError("mosquitto did not start")
    }

    deinit { stop() }

    /// Whether the broker process is still running.
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return process.isRunning
    }

    /// The log so far (mosquitto's log file followed by anything it wrote to stderr).
    public var log: String {
        let file = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: logPath + ".stderr", encoding: .utf8)) ?? ""
        return file + stderr
    }

    /// SIGHUP: mosquitto reloads its configuration (CRL, ACL file, …) for new connections.
    public func sighup() {
        if isRunning { kill(pid, SIGHUP) }
    }

    /// Stops the broker: SIGTERM, then SIGKILL after `grace`, and waits for it to exit. Idempotent.
    public func stop(grace: Duration = .seconds(3)) {
        lock.lock()
        defer { lock.unlock() }
        Self.terminate(process, grace: grace)
    }

    /// SIGKILL without warning (the broker cannot send DISCONNECT or wills), and waits for it to exit.
    public func kill9() {
        lock.lock()
        defer { lock.unlock() }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    private static func terminate(_ process: Process, grace: Duration = .seconds(3)) {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    private static func waitForPort(_ port: Int, process: Process, timeout: Duration, logPath: String) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                let log = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
                    + ((try? String(contentsOfFile: logPath + ".stderr", encoding: .utf8)) ?? "")
                throw TestSupportError("mosquitto exited with status \(process.terminationStatus) before listening on \(port): \(log)")
            }
            if canConnect(port: port) { return }
            usleep(25_000)
        }
        throw TestSupportError("mosquitto did not accept connections on 127.0.0.1:\(port) within \(timeout)")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(socketStream), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(socketStream), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestSupportError("bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestSupportError("getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }
}

#if canImport(Glibc)
let socketStream = SOCK_STREAM.rawValue
#else
let socketStream = SOCK_STREAM
#endif

private func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// A throwaway PKI made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1/localhost (or another
/// SAN), and client certificates with given CNs. EC P-256, valid for one day. Independent of Warden's CA code.
public struct MosquittoTestPKI: Sendable {
    /// The directory holding every file.
    public let directory: String
    /// CA certificate (PEM).
    public let caCert: String
    /// CA private key (PEM).
    public let caKey: String
    /// Server certificate (PEM), `serverAuth`, SAN as requested.
    public let serverCert: String
    /// Server private key (PEM).
    public let serverKey: String

    /// Creates the CA and the server certificate in `directory`.
    /// - Parameters:
    ///   - name: file-name prefix, so several PKIs can share a directory (e.g. a foreign CA).
    ///   - serverSAN: the server certificate's subjectAltName value.
    public init(in directory: String, name: String = "test", serverSAN: String = "IP:127.0.0.1,DNS:localhost") throws {
        self.directory = directory
        caCert = directory + "/\(name)-ca.crt"
        caKey = directory + "/\(name)-ca.key"
        serverCert = directory + "/\(name)-server.crt"
        serverKey = directory + "/\(name)-server.key"
        try Self.run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", caKey, "-out", caCert, "-days", "1", "-subj", "/CN=\(name) test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try issue(commonName: "\(name)-broker", cert: serverCert, key: serverKey,
                  extensions: "subjectAltName=\(serverSAN)\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    }

    /// Issues a client certificate (`clientAuth`) with `commonName`; returns the certificate and key paths.
    @discardableResult
    public func client(_ commonName: String) throws -> (cert: String, key: String) {
        let base = directory + "/" + URL(fileURLWithPath: caCert).lastPathComponent.replacingOccurrences(of: "-ca.crt", with: "")
            + "-client-" + commonName
        try issue(commonName: commonName, cert: base + ".crt", key: base + ".key",
                  extensions: "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
        return (base + ".crt", base + ".key")
    }

    private func issue(commonName: String, cert: String, key: String, extensions: String) throws {
        let csr = cert + ".csr"
        let ext = cert + ".ext"
        try extensions.write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.run([
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=\(commonName)",
        ])
        try Self.run([
            "x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-set_serial",
            String(UInt32.random(in: 1...UInt32.max)), "-days", "1", "-out", cert, "-extfile", ext,
        ])
    }

    private static func run(_ arguments: [String]) throws {
        let result = try WardenProcess.launch("openssl", arguments)
        guard result.status == 0 else {
            throw TestSupportError("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.stderr)")
        }
    }
}

/// A loopback TCP relay between a client and a broker, so a test can make the network misbehave without
/// touching either end: ``cut()`` resets both connections (the broker sees the client's socket drop, as if the
/// device lost power), ``blackhole()`` silently stops forwarding (the broker "vanishes" while the socket stays up).
/// Its threads keep it alive until ``close()``: always call it (e.g. in a `defer`).
public final class TCPProxy: Sendable {
    /// The port clients connect to.
    public let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let state = Mutex(ProxyState())

    struct ProxyState: Sendable {
        var closed = false
        var blackholed = false
        var generation = 0  // bumped by cut(): connections of older generations reset themselves
        var liveConnections = 0
    }

    /// Listens on a free loopback port and relays every accepted connection to 127.0.0.1:`upstreamPort`.
    public init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(socketStream), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = MosquittoProcess.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else {
            closeDescriptor(fd)
            throw TestSupportError("proxy listen failed: errno \(errno)")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Resets every current connection on both sides (SO_LINGER 0 → RST) and waits until they are gone.
    public func cut() {
        state.withLock { $0.generation += 1 }
        waitForNoConnections()
    }

    /// Stops forwarding bytes in both directions; connections stay open. Undone by ``resume()``.
    public func blackhole() { state.withLock { $0.blackholed = true } }

    /// Forwards again after ``blackhole()``.
    public func resume() { state.withLock { $0.blackholed = false } }

    /// Stops accepting, resets every connection and closes the listener.
    public func close() {
        state.withLock { $0.closed = true }
        waitForNoConnections()
    }

    private func waitForNoConnections() {
        let deadline = ContinuousClock.now + .seconds(2)
        while state.withLock({ $0.liveConnections > 0 }) && ContinuousClock.now < deadline { usleep(10_000) }
    }

    private func acceptLoop() {
        defer { closeDescriptor(listener) }
        while !state.withLock({ $0.closed }) {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            let upstream = socket(AF_INET, Int32(socketStream), 0)
            var address = MosquittoProcess.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard upstream >= 0, connected else {
                Self.reset(client)
                if upstream >= 0 { closeDescriptor(upstream) }
                continue
            }
            let generation = state.withLock { s -> Int in
                s.liveConnections += 1
                return s.generation
            }
            let relay = Thread { [self] in pump(client, upstream, generation: generation) }
            relay.start()
        }
    }

    private func pump(_ a: Int32, _ b: Int32, generation: Int) {
        defer {
            Self.reset(a)
            Self.reset(b)
            state.withLock { $0.liveConnections -= 1 }
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let (closed, blackholed, current) = state.withLock { ($0.closed, $0.blackholed, $0.generation) }
            if closed || current != generation { return }
            var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, 20) > 0 else { continue }
            if blackholed { usleep(20_000); continue }
            for (from, to) in [(0, b), (1, a)] where fds[from].revents != 0 {
                let n = read(fds[from].fd, &buffer, buffer.count)
                if n <= 0 { return }
                var offset = 0
                while offset < n {
                    let written = buffer[offset..<n].withUnsafeBytes { write(to, $0.baseAddress, n - offset) }
                    if written <= 0 { return }
                    offset += written
                }
            }
        }
    }

    /// Closes with SO_LINGER {1, 0}, so the peer gets a RST rather than a FIN.
    private static func reset(_ fd: Int32) {
        var lingerOption = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lingerOption, socklen_t(MemoryLayout<linger>.size))
        closeDescriptor(fd)
    }
}
