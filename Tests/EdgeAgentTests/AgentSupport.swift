import Foundation
import WardenTestSupport

/// Runs the built `warden-agent` executable (next to `warden` in the build's bin directory).
enum Agent {
    /// Path of the executable.
    static var executable: String { WardenProcess.binDirectory + "/warden-agent" }

    /// Runs `warden-agent arguments…` and captures its output.
    static func run(_ arguments: [String]) throws -> WardenProcess.Result {
        try WardenProcess.launch(executable, arguments)
    }
}

extension WardenProcess.Result {
    /// stderr is exactly one non-empty line.
    var oneLineError: Bool {
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true)
        return lines.count == 1
    }
}
