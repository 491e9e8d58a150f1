import ArgumentParser

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
        subcommands: [CA.self, Device.self, Cert.self, CRLCommand.self, Audit.self, Broker.self, Serve.self]
    )

    public init() {}
}

@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
extension WardenRoot {
    /// Parses the process arguments and runs the selected command; the whole body of the `warden` executable.
    public static func entry(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
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
