import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The `warden` command tree. The executable's `@main` only calls ``WardenRoot/main()``.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
public struct WardenRoot: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "warden",
        abstract: "Security and device-provisioning authority for IoT fleets.",
        discussion: """
            Exit status: 0 success; 1 refused or invalid (policy, verification, conflict); \
            2 bad input (unreadable or malformed input, unknown id, wrong passphrase); 3 storage failure; \
            64 usage error.
            """,
        subcommands: [
            CA.self, Device.self, Cert.self, CRLCommand.self, Audit.self, Policy.self, Operator.self, Broker.self, Serve.self,
            Firmware.self, Rollout.self,
        ]
    )

    public init() {}
}

@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
extension WardenRoot {
    /// Parses the process arguments and runs the selected command; the whole body of the `warden` executable.
    public static func entry(_ arguments: [String]? = nil) async {
        // A parent may have started us with signals blocked (children inherit the mask); `serve` relies on
        // SIGTERM/SIGINT for graceful shutdown, so start from a clean mask.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        do {
            var command = try parseAsRoot(hoistingGlobalOptions(arguments ?? Array(CommandLine.arguments.dropFirst())))
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

@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
extension WardenRoot {
    /// Options every command accepts, which users may also write before the subcommand
    /// (`warden --home DIR ca show`, the form DESIGN.md documents).
    static let globalOptions: Set<String> = ["--home", "--passphrase-file"]

    /// Moves global options written before the subcommand to after it, where ArgumentParser parses them.
    static func hoistingGlobalOptions(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            guard globalOptions.contains(name) else { break }
            if argument.contains("=") {
                leading.append(argument)
                index += 1
            } else {
                leading.append(contentsOf: arguments[index..<min(index + 2, arguments.count)])
                index += 2
            }
        }
        return Array(arguments[min(index, arguments.count)...]) + leading
    }
}
