import Foundation
import WardenCore

#if canImport(Glibc)
import Glibc
#endif

/// A child process for tests, started through ``CleanSpawn`` (empty signal mask, default dispositions), so the
/// SIGTERM, SIGHUP and SIGALRM that tests and tools rely on are delivered.
public final class SpawnedProcess: Sendable {
    /// Its PID.
    public let pid: pid_t
    let exitStatus = SyncBox<Int32?>(nil)

    /// Starts `executable` (absolute path) with `arguments` and `environment`; stdout goes to `output` (a file path)
    /// or /dev/null, stderr to `errors` or with stdout, stdin from `input` or /dev/null.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: String? = nil,
        errors: String? = nil, input: String? = nil
    ) throws {
        pid = try CleanSpawn.spawn(executable, arguments, environment: environment, stdin: input, stdout: output, stderr: errors)
    }

    /// Whether it still runs (reaps it if it exited).
    public var isRunning: Bool {
        if exitStatus.value != nil { return false }
        guard let status = CleanSpawn.reap(pid) else { return true }
        exitStatus.value = status
        return false
    }

    /// Waits for exit and returns the exit code (128 + signal when killed).
    public func wait() -> Int32 {
        while isRunning { Thread.sleep(forTimeInterval: 0.02) }
        return exitStatus.value ?? -1
    }

    /// Sends `signal`.
    public func signal(_ signal: Int32) { if isRunning { kill(pid, signal) } }

    /// SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaps.
    public func stop(_ first: Int32 = SIGTERM, grace: TimeInterval = 10) {
        signal(first)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { Thread.sleep(forTimeInterval: 0.02) }
        }
    }

    deinit { stop(SIGKILL, grace: 0) }
}

/// A lock-protected value.
final class SyncBox<Value: Sendable>: @unchecked Sendable {
    // @unchecked: every access goes through `lock`.
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
