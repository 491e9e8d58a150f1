import ArgumentParser
import EdgeAgent
import Foundation
import WardenCore

extension WardenAgent {
    /// `warden-agent renew`: one-shot EST renewal with a new key, promoted only once the new identity works.
    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Renew the device certificate over EST (simplereenroll) if due, or now with --force.",
            discussion: """
                Due at 2/3 of the certificate's lifetime (±5 % jitter). Generates a NEW key and CSR, authenticates \
                with the current DIR/device.crt.pem and DIR/device.key (mutual TLS), verifies the new certificate \
                (our key, our id, chains to --trust) and stages it as DIR/device.next.*. It is promoted to \
                DIR/device.key / DIR/device.crt.pem only after an mTLS request to the authority with it succeeds; the \
                old identity is kept as DIR/device.prev.*. Exit 0 when renewed or not due, 1 when refused or failed \
                (the current identity is untouched), 2 for bad input.
                """
        )

        @Option(name: .long, help: "The agent's state directory (device.key, device.crt.pem).")
        var state: String

        @Option(name: .long, help: "The authority's EST base URL, https://HOST:PORT.")
        var estUrl: String

        @Option(name: .long, help: "PEM file of the fleet CA: the only HTTPS anchor and the anchor the certificate must chain to.")
        var trust: String

        @Flag(name: .long, help: "Renew even if the certificate is not due yet.")
        var force = false

        func run() async throws {
            do {
                let renewal = IdentityRenewal(directory: state, est: try ESTClient(estURL: estUrl, trustFile: trust))
                renewal.completeInterruptedPromotion()
                let current = try renewal.currentCertificate()
                var generator = SystemRandomNumberGenerator()
                if !force, !IdentityRenewal.renewalDue(notBefore: current.notBefore, notAfter: current.notAfter, now: Date(), using: &generator) {
                    let due = IdentityRenewal.renewalTime(notBefore: current.notBefore, notAfter: current.notAfter, jitter: 0)
                    print("not due: serial \(current.serial) is renewed from about \(due.formatted(.iso8601)) (use --force to renew now)")
                    return
                }
                let staged = try await renewal.renew()
                do {
                    // The new identity must work before it replaces the old one.
                    _ = try await renewal.est.caCertificates(certFile: renewal.nextCertificatePath, keyFile: renewal.nextKeyPath)
                } catch let error as WardenError {
                    renewal.discardStaged()
                    throw WardenError(error.code == .badInput ? .storage : error.code, "the renewed identity does not work: \(error.message)")
                }
                try renewal.promote()
                print(
                    "renewed \(staged.commonName ?? "device"): serial \(current.serial) -> \(staged.serial), valid until \(staged.notAfter.formatted(.iso8601)); previous identity kept as \(renewal.previousCertificatePath)")
            } catch let error as WardenError {
                throw reportEST(error, command: "renew")
            } catch {
                throw reportEST(WardenError.storage("\(error)"), command: "renew")
            }
        }
    }
}
