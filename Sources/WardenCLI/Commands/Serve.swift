import ArgumentParser
import Foundation
import WardenBroker
import WardenCore
import WardenServer

extension WardenRoot {
    /// `warden serve`
    struct Serve: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Run the authority: supervise the broker, keep its CRL and roles in sync, serve HTTPS (EST, OCSP, CRL, metrics).",
            discussion: "Stops gracefully on SIGTERM or SIGINT.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Broker setup directory from 'warden broker config' (default: the one registered in the home).") var broker: String?
        @Option(help: "HTTPS port for EST, OCSP, CRL, metrics (omit to run without the HTTP API).") var httpsPort: Int?
        @Option(help: "Plain-HTTP port for CRL and OCSP only.") var httpPort: Int?
        @Option(help: "Address the HTTP listeners bind.") var host: String = "127.0.0.1"
        @Flag(help: "Do not supervise a broker even if one is registered.") var noBroker = false

        func execute() async throws {
            let authority = try global.authority()
            var layout: BrokerLayout?
            if !noBroker {
                layout = broker.map { BrokerLayout(directory: $0) } ?? BrokerMetadata.registered(home: global.wardenHome.path)
            }
            try await WardenDaemon(
                .init(
                    authority: authority, broker: layout, httpsPort: httpsPort, httpPort: httpPort, host: host,
                    firmwarePassphrase: try global.passphrase())
            ).run()
        }
    }
}
