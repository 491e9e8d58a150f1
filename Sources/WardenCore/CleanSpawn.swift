import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Starts child processes with a clean signal state.
///
/// Foundation's `Process` lets a child inherit the spawning thread's signal mask, and Dispatch and Swift
/// concurrency threads block most signals: a broker started that way never sees SIGHUP (and keeps its old CRL),
/// and a tool relying on SIGALRM or SIGTERM hangs. Children spawned here get an empty mask and default
/// dispositions (POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF).
public enum CleanSpawn {
    /// Spawns `executable` (an absolute path) and returns its PID.
    /// - Parameters:
    ///   - stdin, stdout: file paths (default /dev/null); stdout is appended to and created if needed.
    ///   - stderr: a file path, or nil to share stdout's.
    ///   - newProcessGroup: put the child in its own process group.
    ///   - outputDescriptor: if given, the child's stdout AND stderr are this open descriptor (e.g. a pipe's write
    ///     end), and `stdout` / `stderr` are ignored.
    public static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        stdin: String? = nil, stdout: String? = nil, stderr: String? = nil, newProcessGroup: Bool = false,
        outputDescriptor: Int32? = nil
    ) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, stdin ?? "/dev/null", O_RDONLY, 0)
        if let outputDescriptor {
            posix_spawn_file_actions_adddup2(&actions, outputDescriptor, STDOUT_FILENO)
            posix_spawn_file_actions_adddup2(&actions, outputDescriptor, STDERR_FILENO)
        } else {
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
            if let stderr {
                posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            } else {
                posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
            }
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let env = environment ?? ProcessInfo.processInfo.environment
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw WardenError.storage("cannot start '\(executable)': \(String(cString: strerror(status)))")
        }
        return child
    }

    /// Reaps `pid` if it has exited: its exit code (128 + signal when killed), or nil while it runs.
    public static func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return result < 0 && errno != EINTR ? -1 : nil }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}
