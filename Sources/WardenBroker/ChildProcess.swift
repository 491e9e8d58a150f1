import Foundation
import WardenCore

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state.
///
/// Foundation's `Process` lets the child inherit the spawning thread's signal mask; Dispatch worker threads block
/// most signals, so a broker started that way never sees SIGHUP and silently keeps its old CRL. This spawns with
/// an empty mask and default dispositions (POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) and its own process
/// group, with stdin/stdout/stderr on /dev/null.
struct ChildProcess: Sendable {
    /// The child's PID.
    let pid: pid_t

    /// Spawns `executable` with `arguments`.
    static func spawn(_ executable: String, _ arguments: [String]) throws -> ChildProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for descriptor in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] {
            posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", descriptor == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw WardenError.storage("cannot start '\(executable)': \(String(cString: strerror(status)))")
        }
        return ChildProcess(pid: child)
    }

    /// Waits for the child to exit and returns its status (or 128 + signal), polling so no thread blocks.
    func waitForExit() async -> Int32 {
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7F
                return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
            }
            if result < 0 && errno != EINTR { return -1 }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
