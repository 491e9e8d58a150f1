import ArgumentParser
import EdgeAgent
import WardenCore

extension WardenAgent {
    /// `warden-agent init --id ID --out DIR`: the device's own key and CSR.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate the device key (P-256, mode 0600) and its CSR for enrollment.",
            discussion: """
                Writes DIR/device.key (PKCS#8 PEM, mode 0600) and DIR/device.csr (CN = ID). Existing files are never \
                overwritten. Enroll with: warden device enroll ID --csr DIR/device.csr
                """
        )

        @Option(name: .long, help: "The device id (lowercase letters, digits and '-', 3 to 63 characters).")
        var id: String

        @Option(name: .long, help: "Directory for device.key and device.csr (created if missing, mode 0700).")
        var out: String

        @Option(name: .long, help: "Trust anchor (PEM, e.g. the output of 'warden ca bundle') that signed configs must chain to; installed as DIR/trust.pem.")
        var trust: String?

        func run() throws {
            let identity = AgentIdentity(directory: out)
            let state = AgentState(directory: out)
            do {
                // Checked before anything is written, so a bad trust file leaves no identity behind.
                if let trust { _ = try state.checkTrust(from: trust) }
                let request = try identity.initialize(id: id)
                if let trust { try state.provisionTrust(from: trust) }
                print("wrote \(identity.keyPath) (mode 0600) and \(identity.csrPath); public key sha256 \(request.publicKeyFingerprint)")
            } catch let error as WardenError {
                throw reportWarden(error)
            }
        }
    }
}

/// Prints a one-line error to stderr and maps a ``WardenError`` to the agent's exit codes: 2 for bad input,
/// 1 for a refusal (existing file, policy) and for runtime failures.
func reportWarden(_ error: WardenError) -> ExitCode {
    var stderr = StandardError()
    print("warden-agent: error: \(error.message)", to: &stderr)
    switch error.code {
    case .badInput, .policyViolation: return AgentExit.badInput
    default: return AgentExit.failure
    }
}
