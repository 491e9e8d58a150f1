import ArgumentParser
import Foundation
import WardenCore
import WardenPKI

extension WardenRoot {
    /// `warden cert …`
    struct Cert: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cert",
            abstract: "Check certificates.", subcommands: [Verify.self])
    }
}

typealias Cert = WardenRoot.Cert

extension WardenRoot.Cert {
    /// `warden cert verify`
    struct Verify: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "RFC 5280 path validation: chain, validity, key usage, purpose, revocation, hostname.",
            discussion: "Exit status: 0 valid; 1 invalid (reason on stderr); 2 bad input.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Leaf certificate PEM (further certificates in the file are used as intermediates).") var leaf: String
        @Option(help: "Trusted root certificate(s), PEM.") var trust: String
        @Option(help: "Untrusted intermediate certificate(s), PEM.") var untrusted: String?
        @Option(help: "Validate at this time (ISO 8601) instead of now.") var at: String?
        @Option(help: "Required purpose: client or server.") var purpose: String?
        @Option(help: "CRL file (PEM or DER); repeatable. The leaf must be covered by a current CRL from its issuer (like openssl -crl_check).") var crl: [String] = []
        @Option(help: "Hostname or IP the certificate must name (server certificates).") var hostname: String?

        func execute() async throws {
            let time: Date
            if let at {
                guard let parsed = ISO8601DateFormatter().date(from: at) else {
                    throw WardenError.badInput("time '\(at)' is not ISO 8601 (e.g. 2026-01-31T12:00:00Z)")
                }
                time = parsed
            } else {
                time = Date()
            }
            let wanted = try purpose.map { text in
                guard let value = CertificatePurpose(rawValue: text) else {
                    throw WardenError.badInput("purpose '\(text)' must be client or server")
                }
                return value
            }
            let verifier = try ChainVerifier(
                trustPEM: try SecureFile.read(trust, what: "trust file"), trustSource: trust,
                untrustedPEM: try untrusted.map { try SecureFile.read($0, what: "untrusted file") },
                untrustedSource: untrusted ?? "",
                crlData: try crl.map { (try SecureFile.read($0, limit: 16 * 1024 * 1024, what: "CRL file"), $0) })
            let result = try await verifier.verify(
                leafPEM: try SecureFile.read(leaf, what: "certificate file"), leafSource: leaf, at: time, purpose: wanted,
                hostname: hostname)
            switch result {
            case .valid(let chain):
                Console.out("\(leaf): OK")
                for (depth, certificate) in chain.enumerated() {
                    Console.out("  depth \(depth): \(certificate.subject)")
                }
            case .invalid(let reasons):
                throw WardenError(.verificationFailed, "\(leaf): invalid: " + reasons.joined(separator: "; "))
            }
        }
    }
}
