import ArgumentParser
import EdgeAgent
import Foundation
import WardenCore

extension WardenAgent {
    /// `warden-agent tuf-client`: the tuf-conformance client-under-test CLI (`CLIENT-CLI.md`).
    struct TUFClientCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tuf-client",
            abstract: "TUF 1.0 client in the tuf-conformance CLI form: init ROOT | refresh | download.",
            discussion: """
                init ROOT        copy the trusted root into --metadata-dir (no network)
                refresh          update the trusted metadata from --metadata-url
                download         refresh, then fetch --target-name from --target-base-url into --target-dir
                Exit 0 on success, 1 on any failure (one line on stderr).
                """
        )

        /// The three conformance commands.
        enum Action: String, ExpressibleByArgument, CaseIterable {
            case `init`, refresh, download
        }

        @Option(name: .long, help: "Directory of the trusted metadata (root.json, timestamp.json, ...).")
        var metadataDir: String

        @Option(name: .long, help: "Base URL of the repository's metadata (http or https).")
        var metadataUrl: String?

        @Option(name: .long, help: "TUF target path to download.")
        var targetName: String?

        @Option(name: .long, help: "Base URL of the repository's targets.")
        var targetBaseUrl: String?

        @Option(name: .long, help: "Directory for verified downloads.")
        var targetDir: String?

        @Option(name: .long, help: "PEM file of the only CAs trusted for HTTPS (e.g. 'warden ca bundle'); default: the system trust store.")
        var caFile: String?

        @Argument(help: "init, refresh or download.")
        var action: Action

        @Argument(help: "The trusted root metadata file (init only).")
        var trustedRoot: String?

        func run() async throws {
            let client = TUFClient(metadataDirectory: metadataDir, caFile: caFile)
            do {
                switch action {
                case .`init`:
                    guard let trustedRoot else { throw WardenError.badInput("init needs the trusted root file: init ROOT") }
                    try client.initialize(trustedRootPath: trustedRoot)
                    print("initialized \(metadataDir) with trusted root \(trustedRoot)")
                case .refresh:
                    try await client.refresh(metadataURL: try url(metadataUrl, "--metadata-url"))
                    print("refreshed metadata in \(metadataDir)")
                case .download:
                    guard let targetName else { throw WardenError.badInput("download needs --target-name") }
                    guard let targetDir else { throw WardenError.badInput("download needs --target-dir") }
                    let path = try await client.download(
                        targetName: targetName, metadataURL: try url(metadataUrl, "--metadata-url"),
                        targetsURL: try url(targetBaseUrl, "--target-base-url"), targetDirectory: targetDir)
                    print("downloaded \(targetName) to \(path)")
                }
            } catch let error as WardenError {
                var stderr = StandardError()
                print("warden-agent: tuf-client \(action.rawValue): \(error.message)", to: &stderr)
                throw ExitCode(1)
            } catch {
                var stderr = StandardError()
                print("warden-agent: tuf-client \(action.rawValue): \(error)", to: &stderr)
                throw ExitCode(1)
            }
        }

        func url(_ text: String?, _ flag: String) throws -> URL {
            guard let text else { throw WardenError.badInput("\(action.rawValue) needs \(flag)") }
            guard let url = URL(string: text), url.scheme != nil else {
                throw WardenError.badInput("\(flag) '\(text.prefix(200))' is not a URL")
            }
            return url
        }
    }
}
