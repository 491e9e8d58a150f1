import Foundation
import Logging
import WardenAuthority
import WardenCore
import WardenUpdate

/// Keeps the firmware repository's online metadata from expiring while `warden serve` runs: every check interval it
/// re-signs timestamp, snapshot and targets that have less than half of their lifetime left
/// (``FirmwareRepository/refreshIfNeeded(passphrase:registry:actor:now:)``), each signature audited.
struct TUFRefresher: Sendable {
    let repository: FirmwareRepository
    let authority: Authority
    let passphrase: [UInt8]
    let logger: Logger

    /// Checks every `interval`, but parses the published metadata only once it is due
    /// (``FirmwareRepository/nextRefreshDue()``) or when the published timestamp changed (another process signed), so
    /// a large repository costs one small file read per interval between re-signings.
    func run(every interval: Duration) async throws {
        var due: Date?
        var seen: [UInt8]?
        while !Task.isCancelled {
            let now = Date()
            if (try? repository.publishedTimestampBytes()) != seen || due.map({ now >= $0 }) ?? true {
                due = refresh(now: now)
                seen = try? repository.publishedTimestampBytes()
            }
            try await Task.sleep(for: interval)
        }
    }

    /// Re-signs what is half-expired. - Returns: when the next re-signing is due, or nil to check again at the next
    /// interval (no repository yet, or an error).
    @discardableResult
    func refresh(now: Date) -> Date? {
        // A repository created while serve runs ('firmware keys init') is picked up at the next check.
        guard repository.isInitialized else { return nil }
        do {
            let signed = try repository.refreshIfNeeded(passphrase: passphrase, registry: authority.registry, actor: authority.actor, now: now)
            if !signed.isEmpty {
                logger.info("re-signed firmware metadata", metadata: ["signed": "\(signed.map { "\($0.0.rawValue) v\($0.1)" })"])
            }
            return try repository.nextRefreshDue()
        } catch {
            logger.error("firmware metadata refresh failed: \(error)")
            return nil
        }
    }
}
