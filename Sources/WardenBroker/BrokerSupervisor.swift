import Foundation
import Synchronization
import WardenCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs Mosquitto as a child process for as long as the calling task runs: starts it, restarts it with
/// exponential backoff when it dies, and stops it (SIGTERM, then SIGKILL after 5 s) when the task is cancelled.
///
/// After every start, once the listener accepts connections, `onStart` runs; `warden serve` uses it to resync the
/// dynamic-security state with the registry, so a crashed broker comes back with the right clients and roles.
public final class BrokerSupervisor: Sendable {
    /// The setup it runs.
    public let layout: BrokerLayout
    let metadata: BrokerMetadata
    let executable: String
    let onStart: @Sendable () async -> Void
    let onEvent: @Sendable (String) -> Void
    let pid = Mutex<pid_t>(0)
    /// How many times the broker was (re)started.
    public let starts = Atomic<Int>(0)

    /// Creates a supervisor for `layout`.
    public init(
        layout: BrokerLayout, executable: String? = nil, onStart: @escaping @Sendable () async -> Void = {},
        onEvent: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.layout = layout
        self.metadata = try BrokerMetadata.load(layout)
        guard let path = executable ?? ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else {
            throw WardenError.notFound("mosquitto is not installed (apt-get install mosquitto)")
        }
        self.executable = path
        self.onStart = onStart
        self.onEvent = onEvent
    }

    /// The PID of the running broker, 0 if none.
    public var currentPID: pid_t { pid.withLock { $0 } }

    /// Supervises until cancelled.
    public func run() async throws {
        var failures = 0
        while !Task.isCancelled {
            if let stale = BrokerProcess.runningPID(layout: layout) {
                // Left behind by a supervisor that was killed (kill -9): stop it, then start our own.
                onEvent("stopping a broker left running as PID \(stale)")
                kill(stale, SIGTERM)
                let deadline = Date().addingTimeInterval(5)
                while kill(stale, 0) == 0 && Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
                if kill(stale, 0) == 0 { kill(stale, SIGKILL) }
            }
            let started = Date()
            let process = try ChildProcess.spawn(executable, ["-c", layout.configuration])
            let child = process.pid
            pid.withLock { $0 = child }
            starts.add(1, ordering: .relaxed)
            try? SecureFile.writeAtomically(Array("\(child)\n".utf8), to: layout.pidFile, mode: 0o644, durable: false)
            onEvent("broker started (pid \(child))")
            let exit = Task { await process.waitForExit() }
            if await BrokerSupervisor.waitForListener(host: metadata.bindAddress, port: metadata.port, timeout: 10) {
                await onStart()
            } else {
                onEvent("broker did not open port \(metadata.port) within 10 s")
            }
            let status: Int32 = await withTaskCancellationHandler {
                await exit.value
            } onCancel: {
                kill(child, SIGTERM)
            }
            if Task.isCancelled {
                await Self.reap(child, exit: exit)
                pid.withLock { $0 = 0 }
                unlink(layout.pidFile)
                onEvent("broker stopped")
                return
            }
            pid.withLock { $0 = 0 }
            unlink(layout.pidFile)
            failures = Date().timeIntervalSince(started) > 60 ? 1 : failures + 1
            let delay = min(30.0, 0.25 * pow(2.0, Double(failures - 1)))
            onEvent("broker exited with status \(status); restarting in \(String(format: "%.2f", delay)) s")
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
        }
    }

    /// After SIGTERM: wait up to 5 s, then SIGKILL.
    static func reap(_ child: pid_t, exit: Task<Int32, Never>) async {
        let killer = Task {
            try await Task.sleep(for: .seconds(5))
            kill(child, SIGKILL)
        }
        _ = await exit.value
        killer.cancel()
    }

    /// Polls until `host:port` accepts a TCP connection or `timeout` seconds pass.
    public static func waitForListener(host: String, port: Int, timeout: TimeInterval) async -> Bool {
        let target = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if canConnect(host: target, port: port) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// One TCP connect attempt.
    static func canConnect(host: String, port: Int) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return false }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
    }
}
