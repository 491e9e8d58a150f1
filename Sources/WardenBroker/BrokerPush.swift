import Foundation
import WardenAuthority
import WardenCore
import WardenPolicy
import WardenStore

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
            let policies = try PolicyRelease.inForce(home: authority.home.path, registry: authority.registry).documents
            let connects = try await BrokerSync(authority: authority, policies: policies).add(deviceID, groups: groups, via: dynsec)
            await dynsec.close()
            return Outcome(notes: [
                connects
                    ? "broker: client and role created for \(deviceID)"
                    : "broker: the policies in force do not let \(deviceID) connect (mqtt:connect); it has no broker client"
            ])
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

    /// After the policies in force changed from `previous` to `current`: recompile every active device's role and
    /// rewrite those that changed (their live sessions are disconnected and reconnect under the new rules). A broker
    /// that is not configured or not running is not an error: `warden serve` rewrites roles when it notices the new
    /// version, and at start.
    public static func afterPolicyChange(
        home: String, registry: Registry, previous: [PolicyDocument], current: [PolicyDocument]
    ) async -> Outcome {
        guard let layout = BrokerMetadata.registered(home: home) else { return Outcome() }
        guard BrokerProcess.runningPID(layout: layout) != nil else {
            return Outcome(notes: ["broker not running; device roles are rewritten when 'warden serve' starts it"])
        }
        do {
            let dynsec = try DynsecClient(layout: layout, identity: .cli)
            let report: BrokerSync.Report
            do {
                report = try await BrokerSync(registry: registry, policies: current).applyPolicyChange(previous: previous, via: dynsec)
            } catch {
                await dynsec.close()
                throw error
            }
            await dynsec.close()
            var notes: [String] = []
            if report.rewritten.isEmpty && report.removed.isEmpty { notes.append("broker: no device role changed") }
            if !report.rewritten.isEmpty {
                notes.append("broker: rewrote the roles of \(report.rewritten.count) device(s): \(Self.list(report.rewritten))")
            }
            if !report.removed.isEmpty {
                notes.append("broker: removed \(report.removed.count) device(s) the policies no longer let connect: \(Self.list(report.removed))")
            }
            return Outcome(notes: notes)
        } catch {
            return Outcome(notes: ["warning: broker not updated (\(error)); 'warden serve' rewrites the roles when it notices the new version"])
        }
    }

    static func list(_ ids: [String]) -> String {
        ids.prefix(20).joined(separator: ", ") + (ids.count > 20 ? ", …" : "")
    }
}
