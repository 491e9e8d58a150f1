import ArgumentParser
import Foundation
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPolicy

#if canImport(Glibc)
import Glibc
#endif

extension WardenRoot {
    /// `warden broker …`
    struct Broker: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "broker",
            abstract: "Set up the Mosquitto broker that enforces device identity.", subcommands: [Config.self])
    }
}

extension WardenRoot.Broker {
    /// `warden broker config`
    struct Config: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "config",
            abstract: "Write a complete Mosquitto 2.0 setup: mTLS, CRL, dynamic-security with default deny.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Directory to create (must not exist).") var out: String
        @Option(help: "MQTT over TLS port.") var port: Int = 8883
        @Option(help: "Address to listen on.") var bind: String = "127.0.0.1"
        @Option(help: "Extra DNS name or IP for the broker certificate; repeatable.") var name: [String] = []
        @Option(help: "User Mosquitto runs as when started as root (default: mosquitto if that user exists).") var user: String?

        func execute() async throws {
            let authority = try global.authority()
            let runAs = user ?? (geteuid() == 0 && getpwnam("mosquitto") != nil ? "mosquitto" : nil)
            let metadata = try BrokerSetup.write(
                layout: BrokerLayout(directory: out), port: port, bindAddress: bind, names: name, authority: authority,
                policies: try PolicyRelease.inForce(home: authority.home.path, registry: authority.registry).documents, user: runAs,
                now: Date())
            Console.out("Broker setup written to \(metadata.directory) (mqtts://\(bind):\(port))")
            Console.out("  run it with: warden serve --broker \(metadata.directory)   (or: mosquitto -c \(metadata.directory)/mosquitto.conf)")
        }
    }
}
