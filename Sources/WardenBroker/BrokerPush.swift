import Foundation
import WardenAuthority
import WardenCore
import WardenPolicy

/// Pushes registry changes to the broker registered for a Warden home, whether or not `warden serve` runs:
/// the CLI calls these right after an enroll or a revoke.
public enum BrokerPush {
    /// What a push did, for the operator.
    public struct Outcome: Sendable {
        /// Lines to show.
        public var notes: [String] = []
    }

    /// After an enrollment: create the device's dynsec client and role. A stopped broker is not an error:
    /// `warden serve` reconciles at start.
    public static func afterEnroll(authority: Authority, deviceID: String, groups: [String]) async -> Outcome {
        guard let layout = BrokerMetadata.registered(home: authority.home.path) else { return Outcome() }
        guard BrokerProcess.runningPID(layout: layout) != nil else {
            return Outcome(notes: ["broker not running; the device gets its broker role when the broker starts"])
        }
        do {
            let dynsec = try DynsecClient(layout: layout, identity: .cli)
            defer { Task { await dynsec.close() } }
            try await BrokerSync(authority: authority, policies: try PolicyDocument.load(home: authority.home.path))
                .add(deviceID, groups: groups, via: dynsec)
            await dynsec.close()
            return Outcome(notes: ["broker: client and role created for \(deviceID)"])
        } catch {
            return Outcome(notes: ["warning: broker not updated (\(error)); 'warden serve' repairs it at start"])
        }
    }

    /// After a revocation: install the new CRL (validated, atomic, SIGHUP) and delete the device's dynsec client,
    /// which disconnects its live session. The CRL step is required; if it fails the error is thrown.
    public static func afterRevoke(authority: Authority, deviceID: String, now: Date) async throws -> Outcome {
        guard let layout = BrokerMetadata.registered(home: authority.home.path) else { return Outcome() }
        var outcome = Outcome()
        let crlPEM = try SecureFile.readText(authority.home.ca.crl, limit: 16 * 1024 * 1024, what: "CRL")
        let signalled = try CRLPublisher.publish(crlPEM: crlPEM, issuerPEM: try authority.ca.issuingPEM, layout: layout, now: now)
        outcome.notes.append(signalled ? "broker: new CRL installed and reloaded" : "broker: new CRL installed (broker not running)")
        guard signalled else { return outcome }
        let dynsec = try DynsecClient(layout: layout, identity: .cli)
        try await BrokerSync(authority: authority, policies: []).remove(deviceID, via: dynsec)
        await dynsec.close()
        outcome.notes.append("broker: \(deviceID) removed and its live session disconnected")
        return outcome
    }
}
