import ArgumentParser
import Foundation
import WardenCore
import WardenPKI

extension WardenRoot {
    /// `warden crl`
    struct CRLCommand: WardenCommand {
        static let configuration = CommandConfiguration(
            commandName: "crl",
            abstract: "Issue a fresh CRL (next CRL number) from the registry and print or write it.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Output file (default stdout).") var out: String?
        @Flag(help: "DER instead of PEM.") var der = false
        @Option(help: "Lifetime until nextUpdate.") var nextUpdate: String = "7d"

        func execute() async throws {
            let validity = try WardenDuration(parsing: nextUpdate)
            if der && out == nil {
                throw WardenError.badInput("--der needs --out FILE (binary output is not written to a terminal)")
            }
            let crl = try global.authority().issueCRL(now: Date(), validity: validity)
            if der, let out {
                try SecureFile.writeAtomically(crl.derEncoded, to: out)
            } else {
                try Console.emit(crl.pemEncoded, to: out)
            }
            if out != nil {
                Console.error("CRL #\(crl.crlNumber.map(String.init) ?? "?") with \(crl.revoked.count) entr\(crl.revoked.count == 1 ? "y" : "ies") written to \(out!)")
            }
        }
    }
}
