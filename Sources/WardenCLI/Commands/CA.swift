import ArgumentParser
import Foundation
import WardenAuthority
import WardenCore
import WardenPKI
import WardenStore

extension WardenRoot {
    /// `warden ca …`
    struct CA: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ca",
            abstract: "Create and inspect the certificate authority.",
            subcommands: [Init.self, Show.self, Bundle.self])
    }
}

typealias CA = WardenRoot.CA

extension WardenRoot.CA {
    /// `warden ca init`
    struct Init: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create the root and issuing CAs (ECDSA P-256, keys encrypted at rest, mode 0600).")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Organization name written into the CA subjects.") var org: String
        @Option(help: "Root CA validity.") var rootValidity: String = "20y"
        @Option(help: "Issuing CA validity.") var issuingValidity: String = "5y"

        /// Minimum passphrase length for new keys.
        static let minimumPassphrase = 8

        func execute() async throws {
            let home = global.wardenHome
            let rootDuration = try WardenDuration(parsing: rootValidity)
            let issuingDuration = try WardenDuration(parsing: issuingValidity)
            if SecureFile.mode(of: home.ca.caDirectory) != nil {
                throw WardenError.alreadyExists("a CA already exists in '\(home.ca.caDirectory)'; refusing to overwrite it")
            }
            let passphrase = try global.passphrase(minimumLength: Self.minimumPassphrase)
            try SecureFile.ensureDirectory(home.path)
            // Open the registry first: if the database is unusable, fail before any key exists.
            let registry = try Registry(path: home.registryPath)
            let now = Date()
            let result = try CAInitializer.initialize(
                layout: home.ca, organization: org, rootValidity: rootDuration, issuingValidity: issuingDuration,
                passphrase: passphrase, now: now)
            try registry.audit(
                action: "ca.init", deviceID: nil,
                details: [
                    "organization": org, "root_serial": result.root.serial, "root_sha256": result.root.sha256Fingerprint,
                    "issuing_serial": result.issuing.serial, "issuing_sha256": result.issuing.sha256Fingerprint,
                ], actor: global.actor, now: now)
            Console.out("Created CA in \(home.ca.caDirectory)")
            Console.out("  root:    \(result.root.subject)  (until \(Console.date(result.root.notAfter)))")
            Console.out("  issuing: \(result.issuing.subject)  (until \(Console.date(result.issuing.notAfter)))")
            Console.out("  root key \(home.ca.rootKey) is needed only to renew the issuing CA: move it offline.")
        }
    }

    /// `warden ca show`
    struct Show: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the CA certificates.")

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Machine-readable output.") var json = false

        struct Output: Encodable {
            let home: String
            let root: CertificateSummary
            let issuing: CertificateSummary
            let rootKeyPresent: Bool
        }

        func execute() async throws {
            let layout = global.wardenHome.ca
            let (root, issuing) = try CertificateAuthority.publicSummaries(layout: layout)
            let output = Output(
                home: global.wardenHome.path, root: root, issuing: issuing,
                rootKeyPresent: SecureFile.mode(of: layout.rootKey) != nil)
            if json {
                Console.out(try Console.json(output))
                return
            }
            for (label, summary) in [("root", root), ("issuing", issuing)] {
                Console.out("\(label):")
                Console.out("  subject:   \(summary.subject)")
                Console.out("  serial:    \(summary.serial)")
                Console.out("  valid:     \(Console.date(summary.notBefore)) .. \(Console.date(summary.notAfter))")
                Console.out("  sha256:    \(summary.sha256Fingerprint)")
            }
            Console.out("root key: \(output.rootKeyPresent ? "present (consider moving it offline)" : "offline")")
        }
    }

    /// `warden ca bundle`
    struct Bundle: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "bundle", abstract: "Write the trust bundle (issuing CA + root) as PEM.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Output file (default stdout).") var out: String?

        func execute() async throws {
            try Console.emit(try CertificateAuthority.bundlePEM(layout: global.wardenHome.ca), to: out)
        }
    }
}
