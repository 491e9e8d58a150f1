import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state (empty mask, default dispositions), own process group.
///
/// Foundation's `Process` lets a child inherit the spawning thread's signal mask; test and Dispatch threads block
/// most signals, so a child started that way ignores the SIGTERM and SIGHUP that tests rely on.
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
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, input ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errors {
            posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, errors, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let env = environment ?? ProcessInfo.processInfo.environment
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw TestSupportError("cannot start \(executable): \(String(cString: strerror(status)))") }
        pid = child
    }

    /// Whether it still runs (reaps it if it exited).
    public var isRunning: Bool {
        if exitStatus.value != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            exitStatus.value = status
            return false
        }
        return result == 0
    }

    /// Waits for exit and returns the exit code (128 + signal when killed).
    public func wait() -> Int32 {
        while isRunning { Thread.sleep(forTimeInterval: 0.02) }
        let status = exitStatus.value ?? 0
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
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
