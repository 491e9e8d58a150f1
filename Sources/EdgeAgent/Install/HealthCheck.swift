import Foundation
import WardenCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The command that decides whether a freshly installed release is healthy.
///
/// JSON: `{"command": ["/usr/libexec/fw-selftest", "--quick"], "timeout_seconds": 30}`. The command is run directly
/// (no shell): `command[0]` must be an absolute path to an executable.
public struct HealthCheck: Codable, Sendable, Equatable {
    /// Longest timeout accepted: one hour.
    public static let maximumTimeout: Double = 3600

    /// The executable (absolute path) and its arguments; at most 64 elements.
    public var command: [String]
    /// Seconds the command may run before it is killed and the release judged unhealthy; more than 0, at most
    /// ``maximumTimeout``.
    public var timeoutSeconds: Double

    /// Creates a health check.
    public init(command: [String], timeoutSeconds: Double) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }

    /// Checks the rules documented on the properties.
    /// - Throws: ``WardenError`` `.badInput`.
    public func validate() throws {
        guard let executable = command.first, executable.hasPrefix("/"), command.count <= 64 else {
            throw WardenError.badInput("health check command must be an absolute executable path and at most 63 arguments")
        }
        guard !command.contains(where: { $0.utf8.contains(0) }) else { throw WardenError.badInput("health check command contains a NUL byte") }
        guard timeoutSeconds > 0, timeoutSeconds <= Self.maximumTimeout else {
            throw WardenError.badInput("health check timeout \(timeoutSeconds) s must be above 0 and at most \(Int(Self.maximumTimeout)) s")
        }
        guard access(executable, X_OK) == 0 else { throw WardenError.badInput("health check command '\(executable)' is not executable") }
    }

    enum CodingKeys: String, CodingKey { case command, timeoutSeconds = "timeout_seconds" }
}

/// The verdict of ``SlotStore/runHealthCheck(_:)``.
public struct HealthResult: Sendable, Equatable {
    /// Largest output kept: 4 KiB.
    public static let maximumOutput = 4096

    /// True iff the command exited with status 0 within the timeout.
    public var healthy: Bool
    /// The slot that was checked (the trial slot, else the active one); nil if there was none.
    public var slot: Slot?
    /// The exit status (128 + signal if killed by one); nil if it never ran or was killed for the timeout.
    public var exitStatus: Int32?
    /// True if it was killed (SIGKILL) because the timeout passed.
    public var timedOut: Bool
    /// Its stdout and stderr, interleaved, cut to the first ``maximumOutput`` bytes (decoded leniently as UTF-8).
    public var output: String
    /// Seconds it ran.
    public var duration: Double
    /// One line for a report or ``SlotStore/rollback(reason:)``: why it is (un)healthy, with the output's last line.
    public var reason: String

    /// Creates a result.
    public init(healthy: Bool, slot: Slot?, exitStatus: Int32?, timedOut: Bool, output: String, duration: Double, reason: String) {
        self.healthy = healthy
        self.slot = slot
        self.exitStatus = exitStatus
        self.timedOut = timedOut
        self.output = output
        self.duration = duration
        self.reason = reason
    }
}

extension SlotStore {
    /// Runs `check` against the trial slot (or the active slot when no install is pending).
    ///
    /// The command runs without a shell, with stdin from /dev/null, in its own process group, with an empty signal
    /// mask, and with exactly this environment: `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    /// `WARDEN_SLOT` (`a`|`b`), `WARDEN_SLOT_DIR`, `WARDEN_SLOT_IMAGE` and `WARDEN_SLOT_VERSION`. It is healthy iff
    /// it exits with 0 within `timeoutSeconds`; otherwise it is killed with SIGKILL (its PID, then its process
    /// group, which it leads) and judged unhealthy. At most 4 KiB of its output is kept; the rest is read and dropped.
    /// Never throws: an invalid check, a missing slot or a failed start is an unhealthy result saying so.
    public func runHealthCheck(_ check: HealthCheck) async -> HealthResult {
        let started = Date()
        func unhealthy(_ slot: Slot?, _ reason: String) -> HealthResult {
            HealthResult(healthy: false, slot: slot, exitStatus: nil, timedOut: false, output: "", duration: 0, reason: reason)
        }
        do { try check.validate() } catch let error as WardenError { return unhealthy(nil, error.message) } catch { return unhealthy(nil, "\(error)") }
        let boot: BootState
        do { boot = try bootState() } catch { return unhealthy(nil, "\(error)") }
        guard let slot = boot.trial ?? boot.active else { return unhealthy(nil, "no slot is installed in '\(directory)'") }
        let slotManifest = try? manifest(of: slot)
        let environment = [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "WARDEN_SLOT": slot.rawValue,
            "WARDEN_SLOT_DIR": directory(of: slot),
            "WARDEN_SLOT_IMAGE": imagePath(of: slot),
            "WARDEN_SLOT_VERSION": slotManifest?.version ?? "",
        ]
        let child: HealthProcess
        do {
            child = try HealthProcess(check.command, environment: environment)
        } catch {
            return unhealthy(slot, "health check '\(check.command[0])' did not start: \(error)")
        }
        let deadline = started.addingTimeInterval(check.timeoutSeconds)
        var status: Int32?
        var timedOut = false
        while true {
            child.drain()
            if let exit = child.reap() {
                status = exit
                break
            }
            if Date() >= deadline {
                child.killGroup()
                timedOut = true
                break
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        child.drain()
        child.finish()
        let output = String(decoding: child.output, as: UTF8.self)
        let lastLine = output.split(whereSeparator: \.isNewline).last.map { ": " + String($0.prefix(200)) } ?? ""
        let duration = Date().timeIntervalSince(started)
        let name = (check.command[0] as NSString).lastPathComponent
        let reason: String
        if timedOut {
            reason = "health check \(name) timed out after \(check.timeoutSeconds) s and was killed\(lastLine)"
        } else if status == 0 {
            reason = "health check \(name) passed\(lastLine)"
        } else {
            reason = "health check \(name) failed with status \(status ?? -1)\(lastLine)"
        }
        return HealthResult(
            healthy: !timedOut && status == 0, slot: slot, exitStatus: timedOut ? nil : status, timedOut: timedOut, output: output,
            duration: duration, reason: reason)
    }
}

private func sysClose(_ fd: Int32) { _ = close(fd) }

/// A health-check child: spawned with a clean signal state in its own process group, stdout and stderr into a
/// non-blocking pipe of which the first 4 KiB are kept.
final class HealthProcess {
    let pid: pid_t
    private var readEnd: Int32
    private(set) var output: [UInt8] = []
    private var reaped = false

    init(_ command: [String], environment: [String: String]) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw WardenError.storage("cannot create a pipe: \(SlotFiles.errorText())") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        defer { sysClose(fds[1]) }

        let child: pid_t
        do {
            child = try CleanSpawn.spawn(
                command[0], Array(command.dropFirst()), environment: environment, newProcessGroup: true, outputDescriptor: fds[1])
        } catch {
            sysClose(fds[0])
            throw error
        }
        pid = child
        readEnd = fds[0]
    }

    /// Reads what is available; keeps the first 4 KiB.
    func drain() {
        guard readEnd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress!, $0.count) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { return }
            let room = HealthResult.maximumOutput - output.count
            if room > 0 { output += buffer[0..<min(room, got)] }
        }
    }

    /// The exit status (128 + signal) once it exited, reaping it; nil while it runs.
    func reap() -> Int32? {
        guard !reaped else { return nil }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return nil }
        reaped = true
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// SIGKILL to the child (by PID), then to its process group (which it leads), and reaps it.
    func killGroup() {
        guard !reaped else { return }
        kill(pid, SIGKILL)
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
    }

    func finish() {
        if readEnd >= 0 { sysClose(readEnd) }
        readEnd = -1
    }

    deinit {
        if !reaped { killGroup() }
        finish()
    }
}
