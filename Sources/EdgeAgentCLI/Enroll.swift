import ArgumentParser
import EdgeAgent
import Foundation
import WardenCore

extension WardenAgent {
    /// `warden-agent enroll`: EST self-enrollment with a one-time bootstrap token.
    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll this device over EST (simpleenroll) with its one-time bootstrap token.",
            discussion: """
                Sends DIR/device.csr (from 'warden-agent init') to the authority with HTTP Basic ID:TOKEN, where the \
                token comes from --token-file or the WARDEN_BOOTSTRAP_TOKEN environment variable (never argv). The \
                returned certificate must be for DIR/device.key, name the device, and chain to --trust; it is then \
                written to DIR/device.crt.pem (mode 0644). A refused token or certificate exits 1 and writes nothing.
                Issue the token on the authority with: warden device token ID
                """
        )

        @Option(name: .long, help: "The agent's state directory (device.key and device.csr from 'warden-agent init').")
        var state: String

        @Option(name: .long, help: "The authority's EST base URL, https://HOST:PORT.")
        var estUrl: String

        @Option(name: .long, help: "File holding the bootstrap token (default: the WARDEN_BOOTSTRAP_TOKEN environment variable).")
        var tokenFile: String?

        @Option(name: .long, help: "PEM file of the fleet CA (e.g. 'warden ca bundle'): the only HTTPS anchor and the anchor the certificate must chain to.")
        var trust: String

        func run() async throws {
            let identity = AgentIdentity(directory: state)
            let certificatePath = AgentState(directory: state).certificatePath
            do {
                let token = try Self.token(file: tokenFile)
                let est = try ESTClient(estURL: estUrl, trustFile: trust)
                let key = try SecureFile.readText(identity.keyPath, what: "device key")
                let csr = try SecureFile.read(identity.csrPath, what: "device CSR")
                guard SecureFile.mode(of: certificatePath) == nil else {
                    throw WardenError.alreadyExists("'\(certificatePath)' already exists; this device is enrolled (use 'warden-agent renew')")
                }
                let id = try ESTClient.deviceID(csr: csr, source: identity.csrPath)
                let issued = try await est.simpleEnroll(csr: csr, csrSource: identity.csrPath, deviceID: id, token: token, privateKeyPEM: key)
                try SecureFile.writeAtomically(Array(issued.chainPEM.utf8), to: certificatePath, mode: 0o644)
                print("enrolled \(id): wrote \(certificatePath) (serial \(issued.info.serial), valid until \(issued.info.notAfter.formatted(.iso8601)))")
            } catch let error as WardenError {
                throw reportEST(error, command: "enroll")
            } catch {
                throw reportEST(WardenError.storage("\(error)"), command: "enroll")
            }
        }

        /// The bootstrap token from `file` (first line, trimmed) or `WARDEN_BOOTSTRAP_TOKEN`.
        static func token(file: String?) throws -> String {
            let text: String
            if let file {
                text = try SecureFile.readText(file, limit: 4096, what: "token file")
            } else if let value = ProcessInfo.processInfo.environment["WARDEN_BOOTSTRAP_TOKEN"] {
                text = value
            } else {
                throw WardenError.badInput("no bootstrap token: give --token-file or set WARDEN_BOOTSTRAP_TOKEN")
            }
            let token = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !token.isEmpty, token.utf8.count <= 512, token.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != ":" }) else {
                throw WardenError.badInput("the bootstrap token \(file.map { "in '\($0)' " } ?? "")is empty or malformed")
            }
            return token
        }
    }
}

/// Prints one line for an enrollment/renewal failure and maps it to an exit code: 2 for bad local input, 1 for
/// everything the authority or verification refused and for runtime failures.
func reportEST(_ error: WardenError, command: String) -> ExitCode {
    var stderr = StandardError()
    let message = error.message.replacingOccurrences(of: "\n", with: " ")
    print("warden-agent: \(command): \(message)", to: &stderr)
    return error.code == .badInput ? AgentExit.badInput : AgentExit.failure
}
