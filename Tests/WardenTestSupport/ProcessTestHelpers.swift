import Foundation

/// The small helpers end-to-end tests share when they drive `warden`, `warden-agent` and Mosquitto as processes: read
/// a log, require a command's success, and poll for a condition with a deadline. A test type (or fixture) adopts the
/// protocol and calls them as `Self.text(…)`, `Self.ok(…)` and `Self.waitUntil(…)`.
public protocol ProcessTestHelpers {}

extension ProcessTestHelpers {
    /// The file's text, or "" if it cannot be read (yet).
    public static func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Throws with the command's stderr unless it exited 0.
    public static func ok(_ result: WardenProcess.Result, _ what: String) throws {
        guard result.status == 0 else { throw TestSupportError("\(what) failed (\(result.status)): \(result.stderr)") }
    }

    /// Polls `condition` every `interval` seconds until it holds or `timeout` passes; the last evaluation decides.
    public static func waitUntil(timeout: TimeInterval, interval: TimeInterval = 0.1, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: interval)
        }
        return condition()
    }
}
