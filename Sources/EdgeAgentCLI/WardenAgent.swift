import ArgumentParser
import EdgeAgent
import EdgeCore

/// The `warden-agent` command tree. The executable's `main.swift` only calls ``WardenAgent/entry(_:)``.
public struct WardenAgent: AsyncParsableCommand {
    /// Command metadata.
    public static let configuration = CommandConfiguration(
        commandName: "warden-agent",
        abstract: "The Warden reference edge agent.",
        subcommands: [Init.self, Enroll.self, Renew.self, Run.self, Replay.self, QueueWriter.self, Bench.self, TUFClientCommand.self, Slots.self]
    )

    /// Creates the root command.
    public init() {}

    /// Parses the process arguments and runs the selected command (sync or async): the whole body of `warden-agent`.
    public static func entry(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments ?? Array(CommandLine.arguments.dropFirst()))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
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
