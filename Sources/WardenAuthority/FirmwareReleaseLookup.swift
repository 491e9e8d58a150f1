import Foundation
import Synchronization
import WardenCore

/// Resolves `name@version` to a published release for hot paths (the OTA block service answers every device
/// request with it). The parsed release list is cached and rebuilt only when the published `timestamp.json` changes,
/// since every `firmware add` or re-signing produces a new timestamp; a lookup otherwise costs one small file read
/// instead of parsing a targets role that grows with the repository.
public final class FirmwareReleaseLookup: Sendable {
    /// The repository looked into.
    public let repository: FirmwareRepository
    let cache = Mutex<(timestamp: [UInt8], releases: [String: FirmwareRelease])?>(nil)

    /// A lookup over `repository`.
    public init(repository: FirmwareRepository) { self.repository = repository }

    /// The published release `name@version`, or nil if there is none (or no repository).
    /// - Throws: ``WardenError`` when the published metadata cannot be read.
    public func release(name: String, version: String) throws -> FirmwareRelease? {
        guard let timestamp = try repository.publishedTimestampBytes() else { return nil }
        let key = FirmwareRepository.targetPath(name: name, version: version)
        if let hit = cache.withLock({ $0?.timestamp == timestamp ? $0?.releases : nil }) { return hit[key] }
        let releases = Dictionary(try repository.list().map { ($0.target, $0) }, uniquingKeysWith: { first, _ in first })
        cache.withLock { $0 = (timestamp, releases) }
        return releases[key]
    }
}
