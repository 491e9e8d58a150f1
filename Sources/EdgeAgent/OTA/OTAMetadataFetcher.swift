import Foundation
import WardenCore
import WardenUpdate

/// A ``TUFFetcher`` over the retained `warden/tuf/<file>` messages the agent has received
/// (`firmware/OTA-PROTOCOL.md` §10): a map from file name to payload. A file not retained is "not in the
/// repository" (nil), which ends the root chain walk and makes a refresh of incomplete metadata fail with
/// `.notFound`, so the caller can fall back to HTTPS. Nothing here is trusted: ``TUFUpdater`` verifies it all.
public struct OTAMetadataFetcher: TUFFetcher {
    /// The topic prefix of the retained metadata.
    public static let prefix = "warden/tuf/"
    /// The filter the agent subscribes to (one level: the file name).
    public static let filter = "warden/tuf/+"
    /// Largest metadata payload kept (the updater's targets limit).
    public static let maximumFileBytes = 32 * 1024 * 1024

    /// The retained files by name.
    public let files: [String: [UInt8]]

    /// A fetcher over `files`.
    public init(files: [String: [UInt8]]) { self.files = files }

    /// The retained file `path`; targets are never delivered over this channel (blocks are).
    public func fetch(_ kind: TUFFetchKind, path: String, maxLength: Int) async throws -> [UInt8]? {
        guard kind == .metadata else { throw WardenError.notFound("targets are not delivered on \(Self.prefix)") }
        guard TUFPath.isSafe(path), !path.contains("/") else { throw WardenError.badInput("unsafe metadata name '\(path.prefix(100))'") }
        guard let bytes = files[path] else { return nil }
        guard bytes.count <= maxLength else { throw WardenError.badInput("retained '\(path)' is longer than \(maxLength) bytes") }
        return bytes
    }

    /// The metadata file name of a topic `warden/tuf/<file>`, if well-formed.
    public static func fileName(ofTopic topic: String) -> String? {
        guard topic.hasPrefix(prefix) else { return nil }
        let name = String(topic.dropFirst(prefix.count))
        guard TUFPath.isSafe(name), !name.contains("/"), name.hasSuffix(".json") else { return nil }
        return name
    }
}
