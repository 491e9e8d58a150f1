import ArgumentParser
import Foundation
import WardenAuthority
import WardenBroker
import WardenCore
import WardenPKI
import WardenPolicy
import WardenStore

extension WardenRoot {
    /// `warden operator …`
    struct Operator: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "operator",
            abstract: "Issue, list and revoke operator client certificates for the admin API.",
            discussion: """
                An operator certificate has CN warden-op-<name> (a prefix no device id can take) and carries its role as \
                the subject OU 'role:<role>'. The admin API authorizes role:<role> with the policies in force plus the \
                built-in operator roles (admin, auditor, release-manager).
                """,
            subcommands: [Issue.self, List.self, Revoke.self])
    }
}

extension WardenRoot.Operator {
    /// `warden operator issue NAME --role ROLE --csr FILE [--out FILE]`
    struct Issue: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "issue", abstract: "Issue an operator certificate carrying a role.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Operator name (CN becomes warden-op-<name>).") var name: String
        @Option(help: "The role, e.g. admin, auditor, release-manager (or a role the policies in force name).") var role: String
        @Option(help: "The operator's PKCS#10 request (PEM or DER); its CN must be NAME or warden-op-NAME.") var csr: String
        @Option(help: "Write the certificate chain here (default stdout).") var out: String?
        @Option(help: "Validity, e.g. 30d (default 90d, at most 397d).") var validity: String?

        func execute() async throws {
            let commonName = try OperatorNaming.commonName(for: name)
            try OperatorRoles.validate(role: role)
            let validity = try validity.map { try WardenDuration(parsing: $0) }
            let csrBytes = try SecureFile.read(csr, limit: CSRValidator.maximumSize, what: "CSR file")
            let authority = try global.authority()
            let known = OperatorRoles.knownRoles(
                in: try PolicyRelease.inForce(home: authority.home.path, registry: authority.registry).documents)
            guard known.contains(role) else {
                throw WardenError.badInput("role '\(role)' is not defined (known: \(known.sorted().joined(separator: ", ")))")
            }
            var staged: String?
            do {
                let issued = try authority.issueOperator(
                    name: commonName, role: role, csr: csrBytes, csrSource: csr, validity: validity, now: Date(),
                    beforeRecord: { issued in
                        if let staged { SecureFile.discard(staged: staged) }
                        if let out { staged = try SecureFile.stage(Array(issued.chainPEM.utf8), besides: out) }
                    })
                if let staged, let out {
                    try SecureFile.commit(staged: staged, to: out)
                    Console.error("issued operator \(issued.commonName) role \(role) serial \(issued.serial); chain written to \(out)")
                } else {
                    Console.out(issued.chainPEM, terminator: "")
                }
            } catch {
                if let staged { SecureFile.discard(staged: staged) }
                throw error
            }
        }
    }

    /// `warden operator list`
    struct List: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List operator certificates.")

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Machine-readable output.") var json = false

        func execute() async throws {
            let records = try global.registry().operatorCertificates()
            if json {
                Console.out(try Console.json(records))
                return
            }
            let formatter = ISO8601DateFormatter()
            for record in records {
                let status = record.revokedAt.map { "revoked \(formatter.string(from: $0))" } ?? "active"
                Console.out("\(record.name)  role \(record.role)  serial \(record.serial)  until \(formatter.string(from: record.notAfter))  \(status)")
            }
        }
    }

    /// `warden operator revoke NAME --reason R`
    struct Revoke: WardenCommand {
        static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke every certificate of an operator (registry and CRL).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Operator name.") var name: String
        @Option(help: "Revocation reason, e.g. keyCompromise.") var reason: String = "unspecified"

        func execute() async throws {
            guard let code = RevocationReason(name: reason), code.isValidInCompleteCRL else {
                throw WardenError.badInput("reason '\(reason)' is not a valid revocation reason")
            }
            let authority = try global.authority()
            let result = try authority.revokeOperator(name: name, reason: code, now: Date())
            Console.out(
                "revoked operator \(try OperatorNaming.commonName(for: name)) (\(code.name)): \(result.serials.count) certificate(s); CRL #\(result.crlNumber) written to \(result.crlPath)")
        }
    }
}
