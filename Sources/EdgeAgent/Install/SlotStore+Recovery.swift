import Foundation
import WardenCore

extension SlotStore {
    /// Brings the store back to a consistent state; call it once at agent start, before anything else uses the store.
    ///
    /// Holding the lock, it:
    /// 1. removes leftovers of an interrupted write (`image.tmp`, staging files of atomic writes);
    /// 2. re-verifies the trial slot, if any (manifest, length, SHA-256); a trial that does not verify is discarded
    ///    (``RecoveryOutcome/trialDiscarded(_:reason:)``);
    /// 3. re-verifies the active slot; if it does not verify but the other slot does, the other slot becomes active
    ///    (``RecoveryOutcome/switched(from:to:reason:)``); if neither does, nothing changes
    ///    (``RecoveryOutcome/unbootable(reason:)``);
    /// 4. raises the floor to the active release if a commit was interrupted between boot.json and floor.json.
    ///
    /// A verified trial is left pending (``RecoveryOutcome/trialPending(_:)``): the caller runs the health check and
    /// commits or rolls back. When several things happened the most severe is reported, in the order unbootable,
    /// switched, trialDiscarded, trialPending, unchanged. Reads every installed image once.
    /// - Throws: ``WardenError`` `.storage` if boot.json or floor.json is corrupted or a write fails.
    public func recover() throws -> RecoveryOutcome {
        guard FileManager.default.fileExists(atPath: directory) else { return .unchanged(active: nil) }
        return try SlotFiles.withLock(lockPath) {
            for path in [directory, directory(of: .a), directory(of: .b)] { _ = SlotFiles.removeLeftovers(in: path) }
            let original = try bootState()
            var boot = original
            var discarded: (Slot, String)?
            if let trial = boot.trial {
                do {
                    _ = try verify(trial)
                } catch let error as WardenError {
                    try discard(trial)
                    boot.trial = nil
                    discarded = (trial, error.message)
                }
            }
            var outcome: RecoveryOutcome?
            var bootable: SlotManifest?
            if let active = boot.active {
                do {
                    bootable = try verify(active)
                } catch let error as WardenError where error.code == .storage {
                    if let manifest = try? verify(active.other) {
                        // A pending install in the other slot is the only bootable image left: it becomes active.
                        boot = BootState(active: active.other, trial: nil)
                        bootable = manifest
                        outcome = .switched(from: active, to: active.other, reason: error.message)
                    } else {
                        outcome = .unbootable(reason: error.message)
                    }
                }
            }
            if boot != original { try writeBoot(boot) }
            // Completes a commit interrupted between boot.json and floor.json; never lowers a floor.
            if let bootable { try raiseFloor(to: bootable) }
            if let outcome { return outcome }
            if let discarded { return .trialDiscarded(discarded.0, reason: discarded.1) }
            if let trial = boot.trial { return .trialPending(trial) }
            return .unchanged(active: boot.active)
        }
    }
}
