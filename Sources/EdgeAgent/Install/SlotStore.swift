import Foundation
import WardenCore
import WardenPKI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A/B firmware slots under the agent's state directory: atomic install into the inactive slot, a trial that is
/// committed or rolled back after a health check, a monotonic install floor per firmware name, and recovery at start.
///
/// Layout of `DIR/slots` (directories mode 0700, files 0600):
/// - `a/`, `b/`: each `image` and `manifest.json` (a ``SlotManifest``); `image.tmp` only while an install writes;
/// - `boot.json`: a ``BootState``;
/// - `floor.json`: the ``SlotFloor`` of every firmware name ever committed;
/// - `rollback.json`: the last ``SlotRollback``;
/// - `.lock`: held (`flock`) by every mutating call, so two processes never install at once.
///
/// Crash safety: the active slot is never written. An install goes into the other slot and only becomes the trial
/// (boot.json) after its image and manifest are durable; a commit is one atomic boot.json write. So after a
/// `kill -9` or power loss at any point, boot.json names the slot that was active before (whose files were not
/// touched) or the fully written new one; ``recover()`` re-verifies and cleans up at the next start.
///
/// The value holds only paths; every call reads the files afresh. Calls from one process are serialized by the lock.
public struct SlotStore: Sendable {
    /// `DIR/slots`.
    public let directory: String

    /// The slot store of the agent state directory `stateDirectory` (the `--state DIR` of `warden-agent`).
    /// Nothing is created until the first install.
    public init(stateDirectory: String) {
        directory = stateDirectory + "/slots"
    }

    /// `slots/<slot>`.
    public func directory(of slot: Slot) -> String { directory + "/" + slot.rawValue }
    /// `slots/<slot>/image`.
    public func imagePath(of slot: Slot) -> String { directory(of: slot) + "/image" }
    /// `slots/<slot>/manifest.json`.
    public func manifestPath(of slot: Slot) -> String { directory(of: slot) + "/manifest.json" }
    /// `slots/boot.json`.
    public var bootPath: String { directory + "/boot.json" }
    /// `slots/floor.json`.
    public var floorPath: String { directory + "/floor.json" }
    /// `slots/rollback.json`.
    public var rollbackPath: String { directory + "/rollback.json" }
    var lockPath: String { directory + "/.lock" }
    func temporaryImagePath(of slot: Slot) -> String { directory(of: slot) + "/image.tmp" }

    // MARK: Reading

    /// The boot state; both nil if there is no boot.json yet.
    /// - Throws: ``WardenError`` `.storage` if boot.json is unreadable or malformed.
    public func bootState() throws -> BootState {
        guard FileManager.default.fileExists(atPath: bootPath) else { return BootState(active: nil, trial: nil) }
        let bytes = try storageRead(bootPath, limit: 4096, what: "boot state")
        guard let state = try? JSONDecoder().decode(BootState.self, from: Data(bytes)), state.active == nil || state.active != state.trial else {
            throw WardenError.storage("boot state '\(bootPath)' is corrupted")
        }
        return state
    }

    /// The install floors by firmware name; empty if there is no floor.json yet.
    /// - Throws: ``WardenError`` `.storage` if floor.json is unreadable or malformed.
    public func floors() throws -> [String: SlotFloor] {
        guard FileManager.default.fileExists(atPath: floorPath) else { return [:] }
        let bytes = try storageRead(floorPath, limit: 1024 * 1024, what: "install floors")
        guard let floors = try? JSONDecoder().decode([String: SlotFloor].self, from: Data(bytes)),
            floors.allSatisfy({ (try? SlotManifest.validateName($0.key)) != nil && (try? FirmwareVersion.validate($0.value.version)) != nil })
        else {
            throw WardenError.storage("install floors '\(floorPath)' are corrupted")
        }
        return floors
    }

    /// The manifest of `slot`, or nil if the slot holds none.
    /// - Throws: ``WardenError`` `.storage` if it is unreadable, over 64 KiB or invalid.
    public func manifest(of slot: Slot) throws -> SlotManifest? {
        let path = manifestPath(of: slot)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let bytes = try storageRead(path, limit: SlotManifest.maximumBytes, what: "slot manifest")
        do {
            return try SlotManifest.decode(bytes, source: path)
        } catch let error as WardenError {
            throw WardenError.storage(error.message)
        }
    }

    /// The last rollback, if any (nil too if rollback.json is unreadable: it is informational).
    public func lastRollback() -> SlotRollback? {
        guard let bytes = try? SecureFile.read(rollbackPath, limit: 2 * SlotManifest.maximumBytes, what: "rollback record") else { return nil }
        return try? JSONDecoder().decode(SlotRollback.self, from: Data(bytes))
    }

    /// The slots, boot state, floors and last rollback. Images are not hashed. A slot whose manifest is unreadable
    /// shows as empty.
    /// - Throws: ``WardenError`` `.storage` if boot.json or floor.json is corrupted.
    public func status() throws -> SlotStatus {
        let boot = try bootState()
        return SlotStatus(
            active: boot.active, trial: boot.trial, a: try? manifest(of: .a), b: try? manifest(of: .b),
            floors: try floors(), lastRollback: lastRollback())
    }

    /// Checks that `slot` holds a manifest and an image whose length and SHA-256 match it; returns the manifest.
    /// Reads the whole image.
    /// - Throws: ``WardenError`` `.storage` naming what is missing or wrong.
    public func verify(_ slot: Slot) throws -> SlotManifest {
        guard let found = try manifest(of: slot) else {
            throw WardenError.storage("slot \(slot) holds no manifest ('\(manifestPath(of: slot))')")
        }
        if let problem = SlotFiles.mismatch(of: imagePath(of: slot), against: found) {
            throw WardenError.storage("slot \(slot): \(problem)")
        }
        return found
    }

    // MARK: Floors

    /// Refuses a release below the floor of its firmware name: a release counter below the floor's, or a version
    /// below the floor's (``FirmwareVersion/compare(_:_:)``: numeric by dot-separated component, lexical otherwise).
    /// Equal is allowed (re-installing the committed release). A name without a floor is always allowed.
    /// - Throws: ``WardenError`` `.policyViolation` naming the floor, `.storage` if floor.json is corrupted.
    public func checkFloor(name: String, version: String, releaseCounter: Int64) throws {
        guard let floor = try floors()[name] else { return }
        if releaseCounter < floor.releaseCounter || FirmwareVersion.compare(version, floor.version) < 0 {
            throw WardenError.policy(
                "firmware \(name)@\(version) (release counter \(releaseCounter)) is below the installed floor "
                    + "\(name)@\(floor.version) (release counter \(floor.releaseCounter)); downgrades are refused")
        }
    }

    // MARK: Install, commit, rollback

    /// Installs the image at `path` into the inactive slot and makes it the trial.
    ///
    /// In order: the manifest is validated; the image's length and SHA-256 are checked against it (nothing is written
    /// if they differ); the floor is checked (``checkFloor(name:version:releaseCounter:)``); then, holding the lock, in
    /// the slot that is not active (slot `a` if none is): a pending trial there is cancelled, the old files are removed,
    /// the image is copied to `image.tmp` (hashed again while copying, so a file changed since the check is refused),
    /// fsynced and renamed to `image`, the manifest is written atomically with `installed_at` = now, the slot directory
    /// is fsynced, and boot.json gets `trial` = that slot. The active slot is never touched.
    ///
    /// Next: ``runHealthCheck(_:)``, then ``commit()`` or ``rollback(reason:)``.
    /// - Returns: the slot now holding the trial.
    /// - Throws: ``WardenError`` `.badInput` (invalid manifest), `.notFound` (no such image file), `.policyViolation`
    ///   (image does not match the manifest; downgrade), `.storage` (I/O, lock held by another process).
    @discardableResult
    public func install(image path: String, manifest: SlotManifest) throws -> Slot {
        try manifest.validate()
        var stored = manifest
        stored.installedAt = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let manifestBytes = try stored.encoded()
        guard manifestBytes.count <= SlotManifest.maximumBytes else {
            throw WardenError.badInput("manifest of \(manifest.name)@\(manifest.version) is larger than 64 KiB")
        }
        guard let source = SlotFiles.openForReading(path) else {
            if errno == ENOENT { throw WardenError.notFound("firmware image '\(path)' does not exist") }
            throw WardenError.badInput("firmware image '\(path)' cannot be opened: \(SlotFiles.errorText())")
        }
        defer { close(source) }
        guard let size = SlotFiles.regularFileSize(source) else {
            throw WardenError.badInput("firmware image '\(path)' is not a regular file")
        }
        let what = "firmware image '\(path)'"
        guard size == manifest.length else {
            throw WardenError.policy("\(what) is \(size) bytes, the manifest of \(manifest.name)@\(manifest.version) says \(manifest.length)")
        }
        let checked = try SlotFiles.hash(source, limit: manifest.length, what: what)
        guard checked.count == manifest.length, Digest.hex(checked.sha256) == manifest.sha256 else {
            throw WardenError.policy("\(what) does not match the SHA-256 of \(manifest.name)@\(manifest.version) in the manifest")
        }
        try checkFloor(name: manifest.name, version: manifest.version, releaseCounter: manifest.releaseCounter)

        try SecureFile.ensureDirectory(directory)
        // The new directory entries are made durable too, not only the files in them.
        try SlotFiles.syncDirectory((directory as NSString).deletingLastPathComponent)
        return try SlotFiles.withLock(lockPath) {
            // Re-checked under the lock: another process may have committed meanwhile.
            try checkFloor(name: manifest.name, version: manifest.version, releaseCounter: manifest.releaseCounter)
            var boot = try bootState()
            let slot = boot.active?.other ?? boot.trial ?? .a
            if boot.trial == slot {
                boot.trial = nil
                try writeBoot(boot)
            }
            let slotDirectory = directory(of: slot)
            try SecureFile.ensureDirectory(slotDirectory)
            try SlotFiles.syncDirectory(directory)
            // The manifest goes first: a slot with an image but no manifest is empty, never half-valid.
            try SlotFiles.remove(manifestPath(of: slot))
            try SlotFiles.remove(imagePath(of: slot))
            try SlotFiles.remove(temporaryImagePath(of: slot))
            _ = SlotFiles.removeLeftovers(in: slotDirectory)
            try SlotFiles.syncDirectory(slotDirectory)

            try copy(source, to: slot, manifest: manifest, what: what)
            try SecureFile.writeAtomically(manifestBytes, to: manifestPath(of: slot), mode: 0o600)
            try SlotFiles.syncDirectory(slotDirectory)
            boot.trial = slot
            try writeBoot(boot)
            return slot
        }
    }

    /// Copies `source` to the slot's `image.tmp` while hashing it, checks the hash again, fsyncs, renames to `image`.
    private func copy(_ source: Int32, to slot: Slot, manifest: SlotManifest, what: String) throws {
        let temporary = temporaryImagePath(of: slot)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WardenError.storage("cannot create '\(temporary)': \(SlotFiles.errorText())") }
        var closed = false
        defer { if !closed { close(fd) } }
        do {
            let copied = try SlotFiles.hash(source, limit: manifest.length, what: what) { chunk in
                try SlotFiles.writeAll(fd, chunk, what: "'\(temporary)'")
            }
            guard copied.count == manifest.length, Digest.hex(copied.sha256) == manifest.sha256 else {
                throw WardenError.policy("\(what) changed while it was being installed; refused")
            }
            guard fsync(fd) == 0 else { throw WardenError.storage("cannot fsync '\(temporary)': \(SlotFiles.errorText())") }
            closed = true
            guard close(fd) == 0 else { throw WardenError.storage("cannot write '\(temporary)': \(SlotFiles.errorText())") }
            guard rename(temporary, imagePath(of: slot)) == 0 else {
                throw WardenError.storage("cannot rename '\(temporary)': \(SlotFiles.errorText())")
            }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Makes the trial slot active and raises the floor of its firmware name to its version and release counter.
    ///
    /// The trial image is verified again first. boot.json is written (atomically) before floor.json; if the agent
    /// dies in between, ``recover()`` raises the floor.
    /// - Throws: ``WardenError`` `.notFound` if no install is pending, `.storage` if the trial slot does not verify
    ///   (nothing is changed; roll it back), `.policyViolation` if the floor moved above it meanwhile.
    public func commit() throws {
        try SecureFile.ensureDirectory(directory)
        try SlotFiles.withLock(lockPath) {
            let boot = try bootState()
            guard let trial = boot.trial else { throw WardenError.notFound("no install is pending in '\(directory)'; nothing to commit") }
            let manifest = try verify(trial)
            try checkFloor(name: manifest.name, version: manifest.version, releaseCounter: manifest.releaseCounter)
            try writeBoot(BootState(active: trial, trial: nil))
            try raiseFloor(to: manifest)
        }
    }

    /// Abandons the pending install: the trial slot's manifest is removed (so the image can never be booted or
    /// switched to), then its image, then boot.json's `trial` is cleared. The active slot is unchanged. `reason`
    /// (cut to 4 KiB) is kept in rollback.json.
    /// - Throws: ``WardenError`` `.notFound` if no install is pending, `.storage`.
    public func rollback(reason: String) throws {
        try SecureFile.ensureDirectory(directory)
        try SlotFiles.withLock(lockPath) {
            let boot = try bootState()
            guard let trial = boot.trial else { throw WardenError.notFound("no install is pending in '\(directory)'; nothing to roll back") }
            let trialManifest = try? manifest(of: trial)
            try discard(trial)
            try writeBoot(BootState(active: boot.active, trial: nil))
            let record = SlotRollback(
                slot: trial, manifest: trialManifest, reason: String(decoding: Array(reason.utf8.prefix(4096)), as: UTF8.self),
                at: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try SecureFile.writeAtomically(Array(try encoder.encode(record)), to: rollbackPath, mode: 0o600)
        }
    }

    // MARK: Internals

    /// Removes a slot's manifest (durably) and then its image.
    func discard(_ slot: Slot) throws {
        try SlotFiles.remove(manifestPath(of: slot))
        try SlotFiles.syncDirectory(directory(of: slot))
        try SlotFiles.remove(imagePath(of: slot))
        try SlotFiles.remove(temporaryImagePath(of: slot))
    }

    func writeBoot(_ state: BootState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try SecureFile.writeAtomically(Array(try encoder.encode(state)) + [0x0A], to: bootPath, mode: 0o600)
    }

    /// Raises the floor of `manifest.name` to the manifest's version and counter, if it is above the floor in both.
    func raiseFloor(to manifest: SlotManifest) throws {
        var all = try floors()
        if let floor = all[manifest.name] {
            guard manifest.releaseCounter >= floor.releaseCounter, FirmwareVersion.compare(manifest.version, floor.version) >= 0,
                manifest.releaseCounter != floor.releaseCounter || manifest.version != floor.version
            else { return }
        }
        all[manifest.name] = SlotFloor(version: manifest.version, releaseCounter: manifest.releaseCounter)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try SecureFile.writeAtomically(Array(try encoder.encode(all)) + [0x0A], to: floorPath, mode: 0o600)
    }

    /// Reads a state file; any failure is a storage error (it is the agent's own file).
    func storageRead(_ path: String, limit: Int, what: String) throws -> [UInt8] {
        do {
            return try SecureFile.read(path, limit: limit, what: what)
        } catch let error as WardenError {
            throw WardenError.storage(error.message)
        }
    }
}
