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

    func run(every interval: Duration) async throws {
        while !Task.isCancelled {
            refresh(now: Date())
            try await Task.sleep(for: interval)
        }
    }

    func refresh(now: Date) {
        // A repository created while serve runs ('firmware keys init') is picked up at the next check.
        guard repository.isInitialized else { return }
        do {
            let signed = try repository.refreshIfNeeded(passphrase: passphrase, registry: authority.registry, actor: authority.actor, now: now)
            if !signed.isEmpty {
                logger.info("re-signed firmware metadata", metadata: ["signed": "\(signed.map { "\($0.0.rawValue) v\($0.1)" })"])
            }
        } catch {
            logger.error("firmware metadata refresh failed: \(error)")
        }
    }
}
