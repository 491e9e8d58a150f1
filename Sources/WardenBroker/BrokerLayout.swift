import Foundation
import WardenCore

/// The files of one Mosquitto setup written by `warden broker config --out DIR`.
public struct BrokerLayout: Sendable {
    /// The directory.
    public let directory: String

    /// The layout of `directory`.
    public init(directory: String) {
        var cleaned = directory
        while cleaned.count > 1 && cleaned.hasSuffix("/") { cleaned.removeLast() }
        self.directory = cleaned
    }

    /// `mosquitto.conf`.
    public var configuration: String { directory + "/mosquitto.conf" }
    /// Trust for client certificates: the device-issuing CA and its root, nothing else.
    public var caFile: String { directory + "/ca.pem" }
    /// Broker server certificate chain.
    public var serverCertificate: String { directory + "/server.crt.pem" }
    /// Broker server key (0600).
    public var serverKey: String { directory + "/server.key.pem" }
    /// The CRL Mosquitto checks on every handshake.
    public var crl: String { directory + "/crl.pem" }
    /// Dynamic-security plugin state.
    public var dynamicSecurity: String { directory + "/dynamic-security.json" }
    /// Warden's control identity (client certificate, CN `warden-control`).
    public var controlCertificate: String { directory + "/control.crt.pem" }
    /// Its key (0600).
    public var controlKey: String { directory + "/control.key.pem" }
    /// A second control identity for one-shot CLI pushes (CN `warden-control-cli`), so that the CLI and
    /// `warden serve` never take over each other's MQTT session (the broker uses the CN as client id).
    public var cliControlCertificate: String { directory + "/control-cli.crt.pem" }
    /// Its key (0600).
    public var cliControlKey: String { directory + "/control-cli.key.pem" }
    /// Metadata: port, bind address, plugin path.
    public var metadata: String { directory + "/broker.json" }
    /// PID of the running broker, written by the supervisor.
    public var pidFile: String { directory + "/mosquitto.pid" }
    /// Broker log.
    public var log: String { directory + "/mosquitto.log" }
}

/// What `broker config` recorded about a setup.
public struct BrokerMetadata: Codable, Sendable, Equatable {
    /// MQTT over TLS port.
    public var port: Int
    /// Address the listener binds.
    public var bindAddress: String
    /// Absolute path of the setup directory.
    public var directory: String
    /// Unix user the broker drops to when started as root, if any.
    public var user: String?

    /// Reads `broker.json` of `layout`.
    public static func load(_ layout: BrokerLayout) throws -> BrokerMetadata {
        let bytes = try SecureFile.read(layout.metadata, what: "broker metadata")
        do {
            return try JSONDecoder().decode(BrokerMetadata.self, from: Data(bytes))
        } catch {
            throw WardenError.badInput("broker metadata '\(layout.metadata)' is not valid: \(error)")
        }
    }

    /// Where a Warden home records its broker directory.
    public static func registrationPath(home: String) -> String { home + "/broker.path" }

    /// The broker directory registered in `home`, if any.
    public static func registered(home: String) -> BrokerLayout? {
        guard let text = try? SecureFile.readText(registrationPath(home: home), limit: 4096) else { return nil }
        let path = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return path.isEmpty ? nil : BrokerLayout(directory: path)
    }
}
