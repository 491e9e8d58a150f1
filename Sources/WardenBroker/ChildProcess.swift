import Foundation
import WardenCore

/// A supervised child process (spawned with a clean signal state, own process group, no stdio).
struct ChildProcess: Sendable {
    /// The child's PID.
    let pid: pid_t

    /// Spawns `executable` with `arguments`.
    static func spawn(_ executable: String, _ arguments: [String]) throws -> ChildProcess {
        ChildProcess(pid: try CleanSpawn.spawn(executable, arguments, newProcessGroup: true))
    }

    /// Waits for the child to exit and returns its status (or 128 + signal), polling so no thread blocks.
    func waitForExit() async -> Int32 {
        while true {
            if let status = CleanSpawn.reap(pid) { return status }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
