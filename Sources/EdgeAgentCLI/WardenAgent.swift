import ArgumentParser
import EdgeCore

/// The `warden-agent` command tree. The executable's `main.swift` only calls ``WardenAgent/main(_:)``.
public struct WardenAgent: ParsableCommand {
    /// Command metadata.
    public static let configuration = CommandConfiguration(
        commandName: "warden-agent",
        abstract: "The Warden reference edge agent.",
        subcommands: [Replay.self, QueueWriter.self, Bench.self]
    )

    /// Creates the root command.
    public init() {}
}

/// Exit codes shared by the agent's commands.
enum AgentExit {
    /// The input (pipeline, CSV, flags) is invalid.
    static let badInput = ExitCode(2)
    /// A runtime failure (storage, I/O).
    static let failure = ExitCode(1)
}

/// Prints a one-line error to stderr and maps it to an exit code.
func report(_ error: EdgeError) -> ExitCode {
    var stderr = StandardError()
    print("warden-agent: error: \(error.message)", to: &stderr)
    switch error.code {
    case .invalidConfig, .invalidInput: return AgentExit.badInput
    default: return AgentExit.failure
    }
}

/// A `TextOutputStream` over stderr.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileOutput.standardError.write(string)
    }
}
