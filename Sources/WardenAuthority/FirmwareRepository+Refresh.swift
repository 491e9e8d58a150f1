import Foundation
import WardenCore
import WardenPKI
import WardenStore
import WardenUpdate

extension FirmwareRepository {
    /// Re-signs the online metadata that has less than half of its lifetime left: targets (30 d), snapshot (7 d),
    /// timestamp (1 d). Re-signing a role also re-signs the roles above it (targets → snapshot → timestamp).
    /// Run periodically by `warden serve`, so clients never see expired metadata while the server runs.
    /// - Returns: the roles and versions signed (empty when everything is fresh).
    @discardableResult
    public func refreshIfNeeded(passphrase: [UInt8], registry: Registry?, actor: String, now: Date) throws -> [(TUFRoleName, Int64)] {
        try locked {
            let root = try currentRoot().payload
            let state = try currentState()
            func stale(_ payload: some TUFPayload, _ role: TUFRoleName) -> Bool {
                payload.expires.timeIntervalSince(now) < expiries.lifetime(role) / 2
            }
            var roles: Set<TUFRoleName> = []
            if stale(state.targets.payload, .targets) { roles.insert(.targets) }
            if stale(state.snapshot.payload, .snapshot) { roles.insert(.snapshot) }
            if stale(state.timestamp.payload, .timestamp) { roles.insert(.timestamp) }
            guard !roles.isEmpty else { return [] }
            let signed = try republish(roles, root: root, passphrase: passphrase, now: now)
            try audit(registry, action: "firmware.sign", details: ["reason": "refresh before expiry", "signed": Self.describe(signed)], actor: actor, now: now)
            return signed
        }
    }

    /// When ``refreshIfNeeded(passphrase:registry:actor:now:)`` will next have work: the earliest point at which one of
    /// the published timestamp, snapshot or targets has half of its lifetime left. Nothing published later can make
    /// that point earlier (new metadata only expires later), so a caller may skip checks until then instead of
    /// parsing a targets role that grows with the repository at every check.
    /// - Throws: ``WardenError`` when the published metadata cannot be read.
    public func nextRefreshDue() throws -> Date {
        let state = try currentState()
        return min(
            state.timestamp.payload.expires.addingTimeInterval(-expiries.lifetime(.timestamp) / 2),
            state.snapshot.payload.expires.addingTimeInterval(-expiries.lifetime(.snapshot) / 2),
            state.targets.payload.expires.addingTimeInterval(-expiries.lifetime(.targets) / 2))
    }

    /// The earliest expiry among the published timestamp, snapshot and targets (for monitoring).
    public func earliestExpiry() throws -> Date {
        let state = try currentState()
        return min(state.timestamp.payload.expires, state.snapshot.payload.expires, state.targets.payload.expires)
    }
}
